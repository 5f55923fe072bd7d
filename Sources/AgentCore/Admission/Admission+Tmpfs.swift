import AgentSupport
import SandboxPolicy

extension Admission {
    /// Every tmpfs a job asks for (`steps[i].mounts[j]` of type tmpfs and a test step's
    /// `steps[i].tmpfs[j]`) may be at most the policy's `tmpfs.maxSizeBytes`; a larger one is
    /// refused before anything runs, naming the JSON path and the key. A tmpfs without a
    /// size gets `tmpfs.defaultSizeBytes` when the step runs (`StepTmpfs`).
    static func admitTmpfs(_ job: JobSpec, file: String, limits: AgentPolicy.TmpfsLimits) throws {
        for (si, step) in job.steps.enumerated() {
            let lists = [("mounts", step.mounts), ("tmpfs", step.tmpfs)]
            for (key, specs) in lists {
                for (mi, spec) in specs.enumerated() {
                    guard case .tmpfs(_, let size?, _) = spec, size > limits.maxSizeBytes else { continue }
                    throw JobValidationError(file: file, path: "steps[\(si)].\(key)[\(mi)]", message:
                        "tmpfs size \(size) is above the agent policy's tmpfs.maxSizeBytes (\(limits.maxSizeBytes))")
                }
            }
        }
    }
}
