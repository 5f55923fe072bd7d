import CAgentSandbox
import AgentSupport
import FoundationEssentials
import Glibc

extension Pod {
    /// Makes the pod's namespaces (and, with `.outbound`, attaches its stack and installs
    /// its fences), or throws the `SandboxError` naming the stage that failed. Nothing is
    /// left behind on failure.
    public static func create(_ configuration: Configuration) async throws -> Pod {
        throw SandboxError(stage: "pod", detail: "(not implemented yet)")
    }

    /// Whether something in the pod accepts TCP connections on 127.0.0.1:`port` (a
    /// service's health check): a connect from a short-lived process that joins the pod's
    /// namespaces (no container, no exec), given up after `timeout`.
    public func isListening(port: UInt16, timeout: Duration = .seconds(1)) async -> Bool {
        false
    }
}
