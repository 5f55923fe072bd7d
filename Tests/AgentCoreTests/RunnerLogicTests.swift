import Foundation
import Testing
@testable import AgentCore

@Suite struct StepPlannerTests {
    func step(_ name: String, _ when: StepSpec.When = .onSuccess) -> StepSpec {
        var s = StepSpec(name: name, run: .shell("true"))
        s.when = when
        return s
    }

    @Test func afterFailureOnlyOnFailureAndAlwaysRun() {
        var p = StepPlanner()
        #expect(p.decide(step("a")) == .run)
        #expect(p.decide(step("f", .onFailure)) == .skip(reason: "no earlier step failed"))
        p.record(.failed, allowFailure: false)
        #expect(p.decide(step("b")) == .skip(reason: "an earlier step failed"))
        #expect(p.decide(step("c", .onFailure)) == .run)
        #expect(p.decide(step("d", .always)) == .run)
    }

    @Test func allowedFailureKeepsGoing() {
        var p = StepPlanner()
        p.record(.failed, allowFailure: true)
        #expect(p.decide(step("b")) == .run)
    }

    @Test func timeoutCountsAsFailureEvenWhenAllowed() {
        var p = StepPlanner()
        p.record(.timedOut, allowFailure: true)
        #expect(p.decide(step("b")) == .skip(reason: "an earlier step failed"))
    }

    @Test func cancellationCancelsEverythingAfter() {
        var p = StepPlanner()
        p.markCancelled()
        #expect(p.decide(step("a", .always)) == .cancel)
    }

    @Test func jobStateAndExitCodes() {
        func st(_ s: StepState, allow: Bool = false) -> StepStatus {
            StepStatus(index: 1, name: "x", type: "build", state: s, allowFailure: allow)
        }
        #expect(StepPlanner.jobState(steps: [st(.succeeded)], cancelled: false, jobTimedOut: false) == .succeeded)
        #expect(StepPlanner.jobState(steps: [st(.failed, allow: true)], cancelled: false, jobTimedOut: false) == .succeeded)
        #expect(StepPlanner.jobState(steps: [st(.failed), st(.skipped)], cancelled: false, jobTimedOut: false) == .failed)
        #expect(StepPlanner.jobState(steps: [st(.timedOut)], cancelled: false, jobTimedOut: false) == .timedOut)
        #expect(StepPlanner.jobState(steps: [st(.error)], cancelled: false, jobTimedOut: false) == .error)
        #expect(StepPlanner.jobState(steps: [st(.succeeded)], cancelled: true, jobTimedOut: false) == .cancelled)
        #expect(StepPlanner.exitCode(for: .succeeded) == 0)
        #expect(StepPlanner.exitCode(for: .failed) == 1)
        #expect(StepPlanner.exitCode(for: .timedOut) == 1)
        #expect(StepPlanner.exitCode(for: .error) == 3)
        #expect(StepPlanner.exitCode(for: .cancelled) == 130)
    }
}

@Suite struct ResultsFolderTests {
    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("rf-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func appearsOnlyOnCommit() throws {
        let base = try tempDir()
        let folder = try ResultsFolder.create(at: base + "/out", force: false)
        try folder.write(Data("{}".utf8), to: "status.json")
        #expect(!FileManager.default.fileExists(atPath: base + "/out"))
        try folder.commit()
        #expect(FileManager.default.fileExists(atPath: base + "/out/status.json"))
        #expect(!FileManager.default.fileExists(atPath: folder.workingPath))
    }

    @Test func refusesNonEmptyUnlessForced() throws {
        let base = try tempDir()
        try FileManager.default.createDirectory(atPath: base + "/out", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/out/old", contents: Data())
        #expect(throws: ResultsFolder.Failure.self) { try ResultsFolder.create(at: base + "/out", force: false) }
        let folder = try ResultsFolder.create(at: base + "/out", force: true)
        try folder.write(Data("new".utf8), to: "status.json")
        try folder.commit()
        #expect(!FileManager.default.fileExists(atPath: base + "/out/old"))
        #expect(FileManager.default.fileExists(atPath: base + "/out/status.json"))
    }

    @Test func discardLeavesNothing() throws {
        let base = try tempDir()
        let folder = try ResultsFolder.create(at: base + "/out", force: false)
        folder.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: base).isEmpty)
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        let s = LogTimestamp.format(Date(timeIntervalSince1970: 1_790_000_000.25))
        #expect(s == "2026-09-21T14:13:20.250Z")
    }
}
