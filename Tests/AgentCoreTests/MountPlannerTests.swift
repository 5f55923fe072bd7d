import Foundation
import Sandbox
import SandboxPolicy
import Testing
@testable import AgentCore

@Suite struct MountPlannerTests {
    /// A job folder with a workspace, an allowed data folder and a forbidden one.
    final class Fixture {
        let root: String
        let t: TempState
        init() throws {
            t = try TempState()
            root = t.state.root + "-job"
            for d in ["job", "src/sub", "allowed/data", "forbidden"] {
                try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
            }
            symlink(root + "/forbidden", root + "/allowed/escape")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        func job(_ mounts: [String]) throws -> JobSpec {
            var step = StepSpec(name: "build", run: .shell("true"))
            step.mounts = try mounts.enumerated().map { try MountSpec.parse(buildKit: $1, path: "steps[1].mounts[\($0)]") }
            var job = JobSpec(id: "j", steps: [StepSpec(name: "first", run: .shell("true")), step], baseDirectory: root + "/job")
            job.workspace = root + "/src"
            job.cacheScope = "main"
            return job
        }
        var allowed: [String] { [root + "/allowed"] }
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    func grant(_ f: Fixture, allowed: [String]? = nil) -> OperatorGrant {
        var policy = AgentPolicy()
        policy.allowedBindSources = allowed ?? f.allowed
        policy.workspaceRoots = [f.root]
        var protected = ProtectedPaths()
        protected.add("the agent's state folder", f.t.state.root, below: true)
        var g = OperatorGrant(policy: policy, protected: protected)
        g.cacheScope = "main"  // the operator's scope: admission sets the job's from it
        return g
    }

    func admit(_ f: Fixture, _ mounts: [String], allowed: [String]? = nil) throws -> AdmittedJob {
        try Admission.admit(try f.job(mounts), file: "job.json", grant: grant(f, allowed: allowed))
    }

    @Test func bindsOutsideThePolicyAreRefusedNamingTheMount() throws {
        let f = try Fixture()
        let m = message { _ = try admit(f, ["type=bind,source=/etc,target=/etc2"]) }
        #expect(m.hasPrefix(#"job.json: steps[1].mounts[0].source: "/etc" is outside the allowedBindSources the operator allows"#), "\(m)")
        // `..` out of the job's folder lands outside every root; a symlink out of an allowed
        // root is never followed.
        let dots = message { _ = try admit(f, ["type=bind,source=../allowed/../forbidden,target=/x"]) }
        #expect(dots.contains("outside the allowedBindSources"), "\(dots)")
        let link = message { _ = try admit(f, ["type=tmpfs,target=/t", "type=bind,source=\(f.root)/allowed/escape,target=/x"]) }
        #expect(link.hasPrefix("job.json: steps[1].mounts[1].source:") && link.contains("leads out of"), "\(link)")
        let missing = message { _ = try admit(f, ["type=bind,source=nope,target=/x"]) }
        #expect(missing.contains("does not exist"))
    }

    @Test func allowedSourcesAndTheWorkspacePass() throws {
        let f = try Fixture()
        let admitted = try admit(f, ["type=bind,source=../allowed/data,target=/data,rw", "type=bind,source=../src/sub,target=/sub"])
        #expect(admitted.binds.count == 2)
        // The job's source is never written through a bind.
        let rw = message { _ = try admit(f, ["type=bind,source=../src,target=/s,rw"], allowed: []) }
        #expect(rw.contains("cannot be bound rw"))
    }

    @Test func theStateFolderIsNeverExposed() throws {
        let f = try Fixture()
        let parent = (f.t.state.root as NSString).deletingLastPathComponent
        for source in [parent, f.t.state.root, f.t.state.root + "/caches"] {
            let m = message { _ = try admit(f, ["type=bind,source=\(source),target=/x"], allowed: ["/"]) }
            #expect(m.contains("which no job may reach") || m.contains("cannot be granted"), "\(source): \(m)")
        }
    }

    @Test func planTurnsSpecsIntoMountsAndHoldsCaches() async throws {
        let f = try Fixture()
        let admitted = try admit(f, ["type=cache,target=/root/.cache,id=pip,sharing=locked",
                                     "type=secret,id=tok,env=TOKEN",
                                     "type=volume,source=data,target=/data,ro",
                                     "type=bind,source=../allowed/data,target=/in",
                                     "type=tmpfs,target=/scratch,size=1m"])
        let job = admitted.spec
        let planner = MountPlanner(state: f.t.state)
        let plan = try await planner.plan(step: job.steps[1], stepIndex: 1, job: job, binds: admitted.binds)
        #expect(plan.mounts.map(\.target) == ["/root/.cache", "/data", "/in", "/scratch"])
        #expect(plan.secrets.map(\.id) == ["tok"])
        #expect(plan.caches == [CacheUse(id: "pip", scope: "main", sharing: "locked", new: true, waitSeconds: 0,
                                         target: "/root/.cache", readOnly: false)])
        #expect(plan.mounts[1].kind == .bind(source: HostPath(VolumeStore(state: f.t.state).dataPath("data", scope: "main")), readOnly: true))
        // Binds carry the admitted identity, so the shim mounts only that very folder.
        guard case .bind(let source, true) = plan.mounts[2].kind else { Issue.record("not a read-only bind"); return }
        #expect(source.path == f.root + "/allowed/data" && source.identity != nil)
        #expect(plan.mounts[3].kind == .tmpfs(size: 1024 * 1024, mode: 0o1777))
        #expect(CacheStore(state: f.t.state).isInUse(scope: "main", id: "pip"))
        plan.release()
        #expect(!CacheStore(state: f.t.state).isInUse(scope: "main", id: "pip"))
        let again = try await planner.plan(step: job.steps[1], stepIndex: 1, job: job, binds: admitted.binds)
        #expect(again.caches.first?.new == false)
        again.release()
    }

    @Test func aFailedPlanHoldsNothing() async throws {
        let f = try Fixture()
        let job = try f.job(["type=cache,target=/c,id=held", "type=bind,source=/etc,target=/e"])
        let planner = MountPlanner(state: f.t.state)
        // A bind that was never admitted is refused, and the cache before it is let go.
        await #expect(throws: JobValidationError.self) {
            _ = try await planner.plan(step: job.steps[1], stepIndex: 1, job: job, binds: [:])
        }
        #expect(!CacheStore(state: f.t.state).isInUse(scope: "main", id: "held"))
    }
}
