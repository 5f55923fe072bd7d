import Foundation
import Testing
@testable import AgentCore

/// The cache scope is the operator's grant (`--cache-scope`); a job may only repeat it.
@Suite struct ScopeGrantTests {
    func job(_ cache: String) throws -> JobSpec {
        try parseJob(oneStep(#"{"name": "a", "run": "x"}"#, job: cache))
    }

    /// Hostile: a fork's job asking for the trusted scope.
    @Test func anotherScopeIsRefusedNamingTheKeyValueAndFlag() throws {
        let hostile = try job(#""cache": {"scope": "default"},"#)
        let error = #expect(throws: JobValidationError.self) {
            try ScopeGrant.grantedCacheScope(job: hostile, grant: "forks", file: "job.json")
        }
        #expect(error?.description == #"job.json: cache.scope: "default" is not this job's cache scope ("forks", set by --cache-scope)"#)
        // The runner turns it into exit 2 like any invalid job.
        #expect(throws: JobValidationError.self) { try ScopeGrant.apply("forks", to: hostile, file: "job.json") }
    }

    @Test func theGrantedScopeRepeatedIsAccepted() throws {
        let honest = try job(#""cache": {"scope": "forks"},"#)
        #expect(try ScopeGrant.grantedCacheScope(job: honest, grant: "forks") == "forks")
        #expect(try ScopeGrant.apply("forks", to: honest).cacheScope == "forks")
    }

    @Test func withoutCacheScopeTheGrantIsUsed() throws {
        let plain = try job("")
        #expect(plain.requestedCacheScope == nil)
        #expect(try ScopeGrant.apply("forks", to: plain).cacheScope == "forks")
        #expect(try ScopeGrant.apply(ScopeGrant.defaultScope, to: plain).cacheScope == "default")
    }

    @Test func grantedByNamesWhereTheGrantCameFrom() throws {
        let error = #expect(throws: JobValidationError.self) {
            try ScopeGrant.grantedCacheScope(job: try job(#""cache": {"scope": "a"},"#), grant: "b", grantedBy: "the admission rule \"forks\"")
        }
        #expect(error?.description == #"cache.scope: "a" is not this job's cache scope ("b", set by the admission rule "forks")"#)
    }

    @Test func grantableScopes() {
        #expect(ScopeGrant.isValidScope("default") && ScopeGrant.isValidScope("forks.pr-12_a"))
        for bad in ["", ".", "..", ".hidden", "-x", "a/b", String(repeating: "a", count: 129)] {
            #expect(!ScopeGrant.isValidScope(bad), "\(bad)")
        }
    }
}
