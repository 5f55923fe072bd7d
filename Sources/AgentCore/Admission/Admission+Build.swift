import AgentSupport
import CAgentSandbox
import FoundationEssentials
import Glibc
import Images

extension Admission {
    /// Build steps, before anything runs: a build needs the job's workspace (its context is
    /// opened beneath it by descriptor, so `..` or a symlink out is refused here), tags
    /// must be image references, and a push may go only to a registry the policy's
    /// `images.allowedRegistries` allows (the same rule as the images a job may pull).
    static func admitBuildSteps(_ job: JobSpec, file: String, workspace: AdmittedPath?, policy: AgentPolicy) throws {
        for (si, step) in job.steps.enumerated() {
            guard let build = step.build else { continue }
            let path = "steps[\(si)].build"
            guard let workspace else {
                throw JobValidationError(file: file, path: path + ".context",
                                         message: "a build step needs the job's \"workspace\" (its context is a folder in it)")
            }
            let fd = agent_resolve_open_beneath(workspace.descriptor, build.context, O_PATH | O_DIRECTORY)
            guard fd >= 0 else {
                let why = errno == EXDEV ? "leads out of the workspace" : "is not a folder in the workspace (\(String(cString: strerror(errno))))"
                throw JobValidationError(file: file, path: path + ".context", message: "\(jsonQuoted(build.context)) \(why)")
            }
            close(fd)
            for (ti, tag) in build.tags.enumerated() {
                let ref: ImageReference
                do { ref = try ImageReference.parse(tag) } catch {
                    throw JobValidationError(file: file, path: path + ".tags[\(ti)]", message: "\(jsonQuoted(tag)): \(error)")
                }
                if build.push, let why = ImageGate.refusal(.registry(ref), policy: policy.images) {
                    throw JobValidationError(file: file, path: path + ".tags[\(ti)]", message: "push: " + why)
                }
            }
        }
    }
}
