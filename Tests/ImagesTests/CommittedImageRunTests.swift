import Foundation
import Testing
@testable import Images

/// An image committed into a state folder (layers from the busybox rootfs fixture and a
/// folder, as `agent build` will write them) is run by the installed agent, as the
/// unprivileged test user, with no registry: `agent exec --image REF --pull never`.
@Suite("Committed image runs")
struct CommittedImageRunTests {
    static let env = ProcessInfo.processInfo.environment

    @Test func aCommittedImageRunsWithAgentExecAsTheTestUser() throws {
        // ci/test.sh runs this as root with the installed agent: anything else is a failure, never a skip.
        guard Self.env["AGENT_BIN"] != nil, getuid() == 0 else {
            Issue.record("needs ci/test.sh (AGENT_BIN, the installed agent, run as root for its test user)")
            return
        }
        let user = Self.env["AGENT_TEST_USER"] ?? "agentci"
        let pw = getpwnam(user)
        #expect(pw != nil, "test user \(user) is missing")
        guard let pw else { return }
        let dir = NSTemporaryDirectory() + "committed-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir + "/app", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/state-root", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "built by a layer\n".write(toFile: dir + "/app/hello", atomically: false, encoding: .utf8)
        let store = try ImageStore(stateDirectory: dir + "/state-root")
        var o = LayerWriteOptions()
        o.sourceDateEpoch = 1_700_000_000
        o.idMapping = .allRoot(hostUID: getuid(), hostGID: getgid())
        let rootfs = open((Self.env["AGENT_FIXTURES"] ?? "") + "/busybox-rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(rootfs >= 0)
        defer { close(rootfs) }
        let base = try LayerWriter(store: store.content, options: o).write(.directory(rootfs))
        let app = open(dir + "/app", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(app) }
        let top = try LayerWriter(store: store.content, options: o).write(.directory(app))
        var config = ImageConfigDocument()
        config.env = ["PATH=/bin:/usr/bin", "FROM_CONFIG=yes"]
        config.cmd = ["cat", "/hello"]
        config.created = ImageConfigDocument.timestamp(epochSeconds: 1_700_000_000)
        config.history = [HistoryEntry(created: config.created, createdBy: "COPY rootfs /"),
                          HistoryEntry(created: config.created, createdBy: "COPY app /")]
        let img = try store.commit(base: nil, layers: [base, top], config: config, tags: ["localhost/committed:1"])
        // The state folder is the test user's (the agent refuses one it does not own).
        let state = dir + "/state"
        try FileManager.default.moveItem(atPath: dir + "/state-root", toPath: state)
        #expect(try run(["/bin/chown", "-R", "\(pw.pointee.pw_uid):\(pw.pointee.pw_gid)", dir]).status == 0)
        chmod(dir, 0o755)
        let policy = (Self.env["AGENT_FIXTURES"] ?? "") + "/test-policies/images.json"
        let r = try run(["/usr/bin/setpriv", "--reuid=\(pw.pointee.pw_uid)", "--regid=\(pw.pointee.pw_gid)", "--clear-groups", "--",
                         Self.env["AGENT_BIN"]!, "exec", "--state-dir", state, "--policy", policy,
                         "--image", "localhost/committed:1", "--pull", "never", "--", "sh", "-c", "cat /hello; echo $FROM_CONFIG; id -u"])
        #expect(r.status == 0 && r.out == "built by a layer\nyes\n0\n", "\(r)")
        // And without a command: the image's Cmd.
        let c = try run(["/usr/bin/setpriv", "--reuid=\(pw.pointee.pw_uid)", "--regid=\(pw.pointee.pw_gid)", "--clear-groups", "--",
                         Self.env["AGENT_BIN"]!, "exec", "--state-dir", state, "--policy", policy,
                         "--image", "localhost/committed:1", "--pull", "never"])
        #expect(c.status == 0 && c.out == "built by a layer\n", "\(c)")
        #expect(img.layers.count == 2)
        // Pushed (every blob new to the registry: uploaded whole), then read by skopeo.
        guard let registry = Self.env["AGENT_TEST_REGISTRY"] else { Issue.record("AGENT_TEST_REGISTRY is not set"); return }
        let dest = registry + "/committed-" + UUID().uuidString.prefix(8).lowercased() + ":1"
        let p = try run(["/usr/bin/setpriv", "--reuid=\(pw.pointee.pw_uid)", "--regid=\(pw.pointee.pw_gid)", "--clear-groups", "--",
                         Self.env["AGENT_BIN"]!, "image", "push", "--state-dir", state, "localhost/committed:1", dest])
        #expect(p.status == 0 && p.out.contains("\(img.manifest) (3 uploaded, 0 mounted, 0 present"), "\(p)")
        let inspect = try run(["/usr/bin/skopeo", "inspect", "--tls-verify=false", "docker://" + dest]).out
        #expect(inspect.contains(img.manifest.description) && inspect.contains("2023-11-14T22:13:20Z") && inspect.contains("FROM_CONFIG=yes"), "\(inspect)")
    }
}
