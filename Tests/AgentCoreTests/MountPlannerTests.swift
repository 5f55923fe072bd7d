import Foundation
import Sandbox
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

    @Test func bindsOutsideThePolicyAreRefusedNamingTheMount() throws {
        let f = try Fixture()
        let m = message { try MountPlanner.validate(job: try f.job(["type=bind,source=/etc,target=/etc2"]), allowedBindSources: f.allowed) }
        #expect(m == #"steps[1].mounts[0]: bind source "/etc" is outside the policy's allowed bind sources"#)
        // `..` and symlinks are resolved before comparing.
        let dots = message { try MountPlanner.validate(job: try f.job(["type=bind,source=../allowed/../forbidden,target=/x"]), allowedBindSources: f.allowed) }
        #expect(dots.contains("outside the policy"))
        let link = message { try MountPlanner.validate(job: try f.job(["type=tmpfs,target=/t", "type=bind,source=\(f.root)/allowed/escape,target=/x"]), allowedBindSources: f.allowed) }
        #expect(link.hasPrefix("steps[1].mounts[1]:") && link.contains("outside the policy"))
        let missing = message { try MountPlanner.validate(job: try f.job(["type=bind,source=nope,target=/x"]), allowedBindSources: f.allowed) }
        #expect(missing.contains("does not exist"))
    }

    @Test func allowedSourcesAndTheWorkspacePass() throws {
        let f = try Fixture()
        try MountPlanner.validate(job: try f.job(["type=bind,source=../allowed/data,target=/data,rw",
                                                  "type=bind,source=../src/sub,target=/sub"]),
                                  allowedBindSources: f.allowed)
        // The job's source is never written through a bind.
        let rw = message { try MountPlanner.validate(job: try f.job(["type=bind,source=../src,target=/s,rw"]), allowedBindSources: []) }
        #expect(rw.contains("cannot be bound rw"))
    }

    @Test func theStateFolderIsNeverExposed() throws {
        let f = try Fixture()
        let parent = (f.t.state.root as NSString).deletingLastPathComponent
        let m = message {
            try MountPlanner.validate(job: try f.job(["type=bind,source=\(parent),target=/x"]),
                                      allowedBindSources: ["/"], protectedPaths: [f.t.state.root])
        }
        #expect(m.contains("would expose the agent's own files"))
    }

    @Test func planTurnsSpecsIntoMountsAndHoldsCaches() async throws {
        let f = try Fixture()
        let job = try f.job(["type=cache,target=/root/.cache,id=pip,sharing=locked",
                             "type=secret,id=tok,env=TOKEN",
                             "type=volume,source=data,target=/data,ro",
                             "type=bind,source=../allowed/data,target=/in",
                             "type=tmpfs,target=/scratch,size=1m"])
        let planner = MountPlanner(state: f.t.state)
        let plan = try await planner.plan(step: job.steps[1], job: job, allowedBindSources: f.allowed, workspaceHostPath: nil)
        #expect(plan.mounts.map(\.target) == ["/root/.cache", "/data", "/in", "/scratch"])
        #expect(plan.secrets.map(\.id) == ["tok"])
        #expect(plan.caches == [CacheUse(id: "pip", scope: "main", sharing: "locked", new: true, waitSeconds: 0,
                                         target: "/root/.cache", readOnly: false)])
        #expect(plan.mounts[1].kind == .bind(source: VolumeStore(state: f.t.state).dataPath("data"), readOnly: true))
        #expect(plan.mounts[2].kind == .bind(source: f.root + "/allowed/data", readOnly: true))
        #expect(plan.mounts[3].kind == .tmpfs(size: 1024 * 1024, mode: 0o1777))
        #expect(CacheStore(state: f.t.state).isInUse(scope: "main", id: "pip"))
        plan.release()
        #expect(!CacheStore(state: f.t.state).isInUse(scope: "main", id: "pip"))
        let again = try await planner.plan(step: job.steps[1], job: job, allowedBindSources: f.allowed, workspaceHostPath: nil)
        #expect(again.caches.first?.new == false)
        again.release()
    }

    @Test func aFailedPlanHoldsNothing() async throws {
        let f = try Fixture()
        let job = try f.job(["type=cache,target=/c,id=held", "type=bind,source=/etc,target=/e"])
        let planner = MountPlanner(state: f.t.state)
        await #expect(throws: JobValidationError.self) {
            _ = try await planner.plan(step: job.steps[1], job: job, allowedBindSources: f.allowed, workspaceHostPath: nil)
        }
        #expect(!CacheStore(state: f.t.state).isInUse(scope: "main", id: "held"))
    }
}
