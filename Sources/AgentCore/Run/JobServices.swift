import AgentSupport
import FoundationEssentials
import Glibc
import Sandbox
import Synchronization

/// The services of one job, from their start before the first step to their stop after
/// the last (or on failure, cancel, timeout): start, wait for health, watch, stop, report.
final class JobServiceGroup: Sendable {
    let factory: ServiceContainerFactory
    let services: [PreparedService]
    private let running = Mutex<[Int: RunningService]>([:])
    private let statuses: Mutex<[ServiceStatus]>

    init(factory: ServiceContainerFactory, services: [PreparedService], logName: (ServiceSpec) -> String) {
        self.factory = factory
        self.services = services
        statuses = Mutex(services.map { s in
            var st = ServiceStatus(alias: s.spec.alias, aliases: s.spec.aliases, name: s.spec.displayName,
                                   state: "stopped", health: s.healthDescription, log: logName(s.spec))
            st.imageDigest = s.image?.digest.description
            return st
        })
    }

    /// `logs/service-<alias>.log` (aliases are DNS names: safe as file names).
    static func logName(_ spec: ServiceSpec) -> String { "logs/service-\(spec.alias).log" }

    func update(_ i: Int, _ body: (inout ServiceStatus) -> Void) { statuses.withLock { body(&$0[i]) } }
    var status: [ServiceStatus] { statuses.withLock { $0 } }

    /// Starts every service, in order. A service that cannot start is recorded and
    /// returned as the job's failure (nothing of the job runs without its services).
    func start(job: PreparedJob) async -> String? {
        for (i, s) in services.enumerated() {
            let what = "service \(jsonQuoted(s.spec.alias)) (\(s.spec.displayName))"
            do {
                let (mounts, secretEnv) = try secretMounts(s, secrets: job.secrets)
                let config = try factory.configuration(s, command: s.argv, mounts: mounts, secretEnv: secretEnv, writable: true)
                let log = try StepLogWriter(path: job.results.directoryPath + "/" + Self.logName(s.spec), capBytes: options.logCapBytes)
                let container = try await RunningContainer.start(config)
                let disk = DiskGuard(path: options.stateDirectory, reserveBytes: options.policy.minFreeDiskBytes)
                let service = RunningService(prepared: s, container: container, log: log, secrets: job.secrets, disk: disk,
                                             secretMounts: mounts, secretEnv: secretEnv)
                running.withLock { $0[i] = service }
                job.progress.send(.service(alias: s.spec.alias, message: "started \(s.spec.displayName)" + (s.healthDescription == "none" ? "" : ", waiting for \(s.healthDescription)")))
                job.jobLog.note("\(what) started (pid \(container.pid))")
            } catch {
                let reason = job.redact("\(what) could not start: \(error)")
                update(i) { $0.state = "unhealthy"; $0.reason = reason }
                job.jobLog.note(reason)
                return reason
            }
        }
        return nil
    }

    var options: RunnerOptions { factory.options }

    /// Secrets the entry names, and only those: files on a tmpfs private to its container,
    /// or env. A secret without a value is skipped unless the job declared it required
    /// (admission has then already refused the job).
    func secretMounts(_ s: PreparedService, secrets: JobSecrets) throws -> ([Mount], [String: String]) {
        var mounts: [Mount] = [], env: [String: String] = [:]
        for secret in s.spec.secrets {
            guard let value = secrets.value(for: secret.id) else { continue }
            if let name = secret.env {
                env[name] = String(decoding: value, as: UTF8.self)
            } else {
                mounts.append(Mount(target: secret.target ?? "/run/secrets/\(secret.id)",
                                    kind: .file(contents: value, mode: secret.mode, uid: s.uid, gid: s.gid)))
            }
        }
        return (mounts, env)
    }

    func service(_ i: Int) -> RunningService? { running.withLock { $0[i] } }

    /// Warns (progress, status.json warnings, log.txt) about each service that exited on
    /// its own since the last call; the job goes on.
    func reportExits(job: PreparedJob) {
        for i in services.indices {
            guard let s = service(i), let r = s.takeExitWarning() else { continue }
            let how = s.diskBreach.map { "was stopped: " + $0 } ?? "exited early with \(RunningService.describe(r))"
            let text = "service \(jsonQuoted(s.alias)) (\(s.prepared.spec.displayName)) \(how); see \(Self.logName(s.prepared.spec))"
            job.progress.warning(text)
            job.jobLog.note(text)
        }
    }

    /// Stops every service (last started first), then records how each ended.
    func stop(job: PreparedJob) async {
        reportExits(job: job)
        for i in services.indices.reversed() {
            guard let s = service(i) else { continue }
            let early = s.exitedEarly
            let r = await s.stop(grace: factory.job.servicesStopGrace)
            update(i) { st in
                switch r.status {
                case .exited(let code): st.exitCode = code
                case .signaled(let sig): st.signal = sig
                }
                if let breach = s.diskBreach {
                    // The guard killed it (maybe while it was being stopped): that is how it ended.
                    st.state = "exited"
                    st.reason = breach
                } else if early {
                    st.state = "exited"
                    st.reason = st.reason ?? "exited on its own with \(RunningService.describe(r))"
                }
            }
            if let e = s.log.writeError { job.progress.warning("service \(s.alias): \(e)") }
            job.jobLog.note("service \(jsonQuoted(s.alias)) stopped (\(early ? "it had exited" : RunningService.describe(r)))")
        }
    }
}

extension JobServiceGroup {
    /// Waits for every service at once (they all started first, so they start up side by
    /// side). Returns why the job cannot run (a failed wait without `allow_unhealthy`), or
    /// nil; `cancelled` when the job was cancelled meanwhile.
    ///
    /// No wait outlasts the job's `deadline` (its timeout counts from before the services).
    func waitForHealth(job: PreparedJob, deadline: ContinuousClock.Instant) async -> (failure: String?, cancelled: Bool) {
        // Every service is waited for at once, so the job waits as long as its slowest
        // service, not the sum; each outcome is reported as it comes in. The first failure
        // that is not allowed ends the other waits (the job will not run).
        let factory = self.factory
        return await withTaskGroup(of: (Int, ServiceHealthWait.Outcome, Duration).self) { group in
            for i in services.indices {
                guard let s = service(i) else { continue }
                group.addTask {
                    let started = ContinuousClock.now
                    let outcome = await ServiceHealthWait(service: s, factory: factory, jobDeadline: deadline).wait()
                    return (i, outcome, ContinuousClock.now - started)
                }
            }
            var failure: String? = nil
            var cancelled = false
            for await (i, outcome, waited) in group {
                guard let s = service(i) else { continue }
                update(i) { $0.waitedSeconds = (waited.seconds * 1000).rounded() / 1000 }
                switch outcome {
                case .noWait:
                    job.progress.send(.service(alias: s.alias, message: "running (nothing to wait for)"))
                case .ready:
                    update(i) { $0.state = "healthy" }
                    job.progress.send(.service(alias: s.alias, message: "healthy after \(JobDuration.tenths(waited))"))
                    job.jobLog.note("service \(jsonQuoted(s.alias)) healthy (\(s.prepared.healthDescription))")
                case .cancelled:
                    // Ours (after a failure), or the job's.
                    if failure == nil { cancelled = true }
                case .failed(let why):
                    let reason = job.redact(why)
                    update(i) { $0.state = "unhealthy"; $0.reason = reason }
                    job.jobLog.note(reason)
                    if s.prepared.spec.allowUnhealthy {
                        job.progress.warning(reason + " (allow_unhealthy: the job goes on)")
                    } else if failure == nil && !cancelled {
                        job.progress.send(.service(alias: s.alias, message: "unhealthy: " + reason))
                        failure = reason
                        group.cancelAll()
                    }
                }
            }
            if let failure { return (failure, false) }
            return (nil, cancelled)
        }
    }
}
