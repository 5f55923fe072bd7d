import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// Waits until a service is ready, as GitLab's wait-for-services does: the entry's
/// `healthcheck` (`{"tcp": PORT}` or `{"cmd": [...]}`), else every TCP port its image
/// exposes, else the image's Docker HEALTHCHECK (run as a container of its own in the job's
/// network on the service's root: it shares the network, not the service's filesystem),
/// else nothing. Polled every `interval` until `timeout`.
struct ServiceHealthWait {
    let service: RunningService
    let factory: ServiceContainerFactory
    /// The job's deadline: a wait ends there even if its own timeout is longer.
    var jobDeadline: ContinuousClock.Instant? = nil

    enum Outcome: Sendable, Equatable {
        case ready
        case noWait
        /// Why it is not ready (names the service and what it waited for).
        case failed(String)
        case cancelled
    }

    var spec: ServiceSpec { service.prepared.spec }
    var what: String { "service \(jsonQuoted(spec.alias)) (\(spec.displayName))" }

    /// The wait's bound: the entry's timeout, or what is left of the job's.
    var timeout: (Duration, cutByJob: Bool) {
        guard let jobDeadline else { return (spec.healthTimeout, false) }
        let left = max(jobDeadline - ContinuousClock.now, .zero)
        return left < spec.healthTimeout ? (left, true) : (spec.healthTimeout, false)
    }

    func wait() async -> Outcome {
        let (timeout, cut) = self.timeout
        let within = "within \(JobDuration.format(timeout))" + (cut ? " (the rest of the job's timeout)" : "")
        switch spec.healthcheck {
        case .tcp(let port):
            return await poll(goal: "accepting connections on port \(port)",
                              failure: "did not accept connections on port \(port) \(within)") { await self.listening([port]) }
        case .cmd(let argv):
            return await command(argv, failure: "did not pass its health check command \(within)")
        case nil:
            let ports = service.prepared.exposedTCPPorts
            if !ports.isEmpty {
                let list = ports.map(String.init).joined(separator: ", ")
                return await poll(goal: "accepting connections on its exposed ports (\(list))",
                                  failure: "did not accept connections on its exposed ports (\(list)) \(within)") { await self.listening(ports) }
            }
            if let argv = service.prepared.imageHealthcheck {
                return await command(argv, failure: "did not pass its image's HEALTHCHECK \(within)")
            }
            return .noWait
        }
    }

    /// Every port in `ports` accepts a connection on 127.0.0.1 in the job's network.
    private func listening(_ ports: [UInt16]) async -> Bool {
        for p in ports where !(await factory.pod.isListening(port: p, timeout: min(spec.healthInterval * 4, .seconds(1)))) {
            return false
        }
        return true
    }

    private func command(_ argv: [String], failure: String) async -> Outcome {
        let last = LastProbe()
        return await poll(goal: "passing its health check", failure: failure, detail: { last.text }) {
            await self.runProbe(argv, into: last)
        }
    }

    /// The probe as a container on the service's root (read-only, no upper of its own),
    /// with the service's user and environment, bounded by the interval (at least 1 s).
    private func runProbe(_ argv: [String], into last: LastProbe) async -> Bool {
        do {
            var c = try factory.configuration(service.prepared, command: argv, mounts: service.secretMounts,
                                              secretEnv: service.secretEnv, writable: false)
            c.timeout = max(spec.healthInterval, .seconds(1))
            c.killGracePeriod = .milliseconds(100)
            let probe = try await RunningContainer.start(c)
            // The output is not kept (it would interleave with the service's log); drained
            // so the probe never blocks on a full pipe.
            let drain = Task { for await _ in probe.output {} }
            let r = await probe.wait()
            await drain.value
            last.text = r.timedOut ? "the last check timed out" : "the last check ended with \(RunningService.describe(r))"
            return !r.timedOut && r.status == .exited(0)
        } catch {
            last.text = "the check could not start: \(error)"
            return false
        }
    }

    /// Polls `probe` every interval until it holds, the service exits, the job is
    /// cancelled or `timeout` passes.
    private func poll(goal: String, failure: String, detail: @Sendable () -> String? = { nil },
                      probe: @Sendable () async -> Bool) async -> Outcome {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout.0
        while true {
            if Task.isCancelled { return .cancelled }
            if let r = service.result {
                return .failed("\(what) exited with \(RunningService.describe(r)) before \(goal)")
            }
            if await probe() { return .ready }
            if clock.now >= deadline {
                return .failed("\(what) \(failure)" + (detail().map { " (\($0))" } ?? ""))
            }
            try? await Task.sleep(for: min(spec.healthInterval, max(deadline - clock.now, .milliseconds(10))))
        }
    }
}

/// The last health-check command's result, for the failure message.
final class LastProbe: Sendable {
    private let m = Mutex<String?>(nil)
    var text: String? {
        get { m.withLock { $0 } }
        set { m.withLock { $0 = newValue } }
    }
}
