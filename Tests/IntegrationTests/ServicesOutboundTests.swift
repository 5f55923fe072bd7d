import Foundation
import Testing

/// A job with services and `"network": "outbound"`: its steps and services share one pod,
/// so one stack gives both the way out, and the steps still reach the services by alias.
/// In `NetworkOutboundTests` (an extension) so it is serialized with the test that makes
/// /dev/net/tun 0600 for its duration.
extension NetworkOutboundTests {
    @Test func servicesAndStepsOfAnOutboundJobShareOnePod() async throws {
        let port = TestInternet.freePort()
        let net = try await TestInternet.make(port: port, body: Self.body)
        defer { net.stop() }
        let marker = "svc-outbound-\(UUID().uuidString.prefix(6))"
        let url = "http://\(net.serverAddress):\(port)/probe"
        let f = try JobFixture("""
        {"version": 1, "id": "svc-outbound", "network": "outbound", "services": [
          {"name": "host", "alias": "web", "healthcheck": {"tcp": 8091, "timeout": "20s"},
           "command": ["sh", "-c", "wget -q -T 3 -O - \(url); python3 -m http.server 8091 --bind 127.0.0.1 --directory /usr/share # \(marker)"]}
        ], "steps": [
          {"name": "internet", "run": "wget -q -T 3 -O - \(url)"},
          {"name": "service", "network": "outbound", "run": "wget -q -T 3 -O /dev/null http://web:8091/ && echo web-ok"}
        ]}
        """)
        let r = try await f.run(["--policy", try TestInternet.policy()])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try f.read("logs/01-internet.log").contains(Self.body))
        #expect(try f.read("logs/02-service.log").contains("out web-ok"))
        #expect(try f.read("logs/service-web.log").contains(Self.body))
        for step in try f.steps() {
            let n = step["network"] as? [String: Any]
            #expect(n?["mode"] as? String == "outbound" && n?["stack"] as? String == "slirp4netns", "\(step)")
        }
        #expect(try f.read("log.txt").contains("job network: one pod (outbound through slirp4netns)"))
        await ServicesTests.expectNoSurvivors(marker)
    }
}
