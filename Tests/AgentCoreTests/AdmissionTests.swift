import Foundation
import Sandbox
import SandboxPolicy
import Testing
@testable import AgentCore

/// The admission step as a hostile job would try it: every key that names a host path is
/// refused unless it lies beneath what the operator granted, and the agent's own folders
/// are never reachable. Each refusal names the file, the JSON path and the policy key.
@Suite struct AdmissionTests {
    /// A fake agent home with a state folder and a private key, a job folder inside the
    /// home, and a granted checkout root outside it.
    final class World {
        let top: String
        var home: String { top + "/home" }
        var state: String { home + "/.local/state/agent" }
        var jobs: String { home + "/project" }
        var checkouts: String { top + "/srv/checkouts" }
        init() throws {
            top = NSTemporaryDirectory() + "admission-\(UUID().uuidString.prefix(8))"
            for d in ["home/.ssh", "home/.local/state/agent/caches", "home/project/src", "home/project/rootfs",
                      "srv/checkouts/repo", "srv/other", "a:b,c"] {
                try FileManager.default.createDirectory(atPath: top + "/" + d, withIntermediateDirectories: true)
            }
            try "PRIVATE KEY".write(toFile: home + "/.ssh/id_rsa", atomically: false, encoding: .utf8)
            symlink(home, jobs + "/home-link")
            symlink(state, checkouts + "/state-link")
            symlink("src", jobs + "/rel-link")
        }
        deinit { try? FileManager.default.removeItem(atPath: top) }

        var grant: OperatorGrant {
            var policy = AgentPolicy()
            policy.workspaceRoots = [checkouts]
            var protected = ProtectedPaths()
            protected.add("the agent's home", home, below: false)
            protected.add("the agent's state folder", state, below: true)
            return OperatorGrant(policy: policy, protected: protected)
        }

        func job(_ configure: (inout JobSpec) -> Void) -> JobSpec {
            var job = JobSpec(id: "j", steps: [StepSpec(name: "s", run: .shell("true"))], baseDirectory: jobs)
            configure(&job)
            return job
        }

        func refusal(_ grant: OperatorGrant? = nil, _ configure: (inout JobSpec) -> Void) -> String {
            do {
                _ = try Admission.admit(job(configure), file: "job.json", grant: grant ?? self.grant)
                return "admitted"
            } catch {
                return "\(error)"
            }
        }
    }

    @Test func workspaceOutsideTheGrantedRootsIsRefusedNamingThePolicyKey() throws {
        let w = try World()
        let m = w.refusal { $0.workspace = w.top + "/srv/other" }
        #expect(m == "job.json: workspace: \"\(w.top)/srv/other\" is outside the workspaceRoots the operator allows (workspaceRoots: [\"\(w.checkouts)\"]; workspaceRoots in the agent policy, or --workspace-root)")
        #expect(w.refusal { $0.workspace = "/" }.contains("is outside the workspaceRoots"))
    }

    @Test func theAgentsOwnFoldersAreNeverAWorkspace() throws {
        let w = try World()
        // The home itself, the state folder, what contains them, and symlinks to them.
        #expect(w.refusal { $0.workspace = ".." }.contains("outside the workspaceRoots"))
        #expect(w.refusal { $0.workspace = "home-link" }.contains("outside the workspaceRoots"))
        // A job file that sits in the home itself cannot name the home or the state folder.
        let inHome = { (path: String) in w.refusal { $0.baseDirectory = w.home; $0.workspace = path } }
        #expect(inHome(".").contains("cannot be given to a job: it is the agent's home"), "\(inHome("."))")
        #expect(inHome(".local").contains("it contains the agent's state folder"))
        #expect(inHome(".local/state/agent/caches").contains("it is inside the agent's state folder"))
        #expect(w.refusal { $0.workspace = "../.local/state/agent" }.contains("outside the workspaceRoots"))
        var wide = w.grant
        wide.policy.workspaceRoots = [w.top]
        #expect(w.refusal(wide) { $0.workspace = w.top }.contains("cannot be granted: it contains the agent's home"))
        #expect(w.refusal(wide) { $0.workspace = w.state + "/caches" }.contains("cannot be granted"))
        // A symlink inside a granted root that points at the state folder is never followed out.
        #expect(w.refusal { $0.workspace = w.checkouts + "/state-link" }.contains("leads out of"))
    }

    @Test func relativePathsStayInTheJobFolder() throws {
        let w = try World()
        let admitted = try Admission.admit(w.job { $0.workspace = "src" }, file: "job.json", grant: w.grant)
        #expect(admitted.workspace?.host.path == w.jobs + "/src")
        #expect(admitted.workspace?.host.identity != nil)
        // A symlink that stays inside the folder is fine; `..` out of it is not, unless it
        // lands beneath a granted root.
        let linked = try Admission.admit(w.job { $0.workspace = "rel-link" }, file: "job.json", grant: w.grant)
        #expect(linked.workspace?.host.path == w.jobs + "/src")
        #expect(w.refusal { $0.workspace = "../.ssh" }.contains("outside the workspaceRoots"))
        var none = w.grant
        none.policy.workspaceRoots = []
        #expect(w.refusal(none) { $0.workspace = "../srv" }.contains("leaves the job file's folder"))
        let up = try Admission.admit(w.job { $0.workspace = "../../srv/checkouts/repo" }, file: "job.json", grant: w.grant)
        #expect(up.workspace?.host.path == w.checkouts + "/repo")
    }

    @Test func namesMountOptionsCannotCarryAreHandledByDescriptor() throws {
        let w = try World()
        var g = w.grant
        g.policy.workspaceRoots = [w.top + "/a:b,c"]
        let admitted = try Admission.admit(w.job { $0.workspace = w.top + "/a:b,c" }, file: "job.json", grant: g)
        #expect(admitted.workspace?.host.path == w.top + "/a:b,c")
    }

    @Test func rootfsIsGrantedLikeTheWorkspace() throws {
        let w = try World()
        let ok = try Admission.admit(w.job { $0.image = .rootfs("rootfs") }, file: "job.json", grant: w.grant)
        #expect(ok.rootfs?.host.path == w.jobs + "/rootfs")
        #expect(w.refusal { $0.image = .rootfs(w.state) }.contains("image.rootfs"))
        #expect(w.refusal { $0.image = .rootfs("/") }.contains("outside the rootfsRoots"))
        #expect(w.refusal { $0.image = .rootfs("..") }.contains("leaves the job file's folder"))
    }

    @Test func bindSourcesThroughTheWorkspaceStayInIt() throws {
        let w = try World()
        let m = w.refusal {
            $0.workspace = "src"
            $0.steps[0].mounts = [.bind(source: w.home + "/.ssh", target: "/k", readWrite: false)]
        }
        #expect(m.hasPrefix("job.json: steps[0].mounts[0].source:") && m.contains("outside the allowedBindSources"), "\(m)")
    }

    @Test func hostNetworkNeedsThePolicy() throws {
        let w = try World()
        #expect(w.refusal { $0.network = .host } == "job.json: network: \"host\" is not allowed by the agent policy (allowHostNetwork: false)")
    }

    @Test func outboundNetworkNeedsThePolicyAtJobAndStepLevel() throws {
        let w = try World()
        #expect(w.refusal { $0.network = .outbound }
                == "job.json: network: \"outbound\" is not allowed by the agent policy (allowOutboundNetwork: false)")
        #expect(w.refusal { $0.steps[0].network = .outbound }
                == "job.json: steps[0].network: \"outbound\" is not allowed by the agent policy (allowOutboundNetwork: false)")
        #expect(w.refusal { $0.steps[0].network = .host }
                == "job.json: steps[0].network: \"host\" is not allowed by the agent policy (allowHostNetwork: false)")
    }
}
