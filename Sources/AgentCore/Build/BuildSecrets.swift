import FoundationEssentials

extension BuildRequest {
    /// The operator's `--secret` flags of `agent build` (BuildKit's syntax), read as
    /// run-job reads them: every flag given must have a value; `ids` the Dockerfile or
    /// job step marks required that no flag gives may still come from the policy's
    /// `secrets` (limited to `scope`).
    public static func secrets(flags: [String], requiredIDs: [String] = [], policy: AgentPolicy, scope: String,
                               environment: [String: String], cwd: String) throws(BuildError) -> SecretStore {
        do {
            let parsed = try flags.map { try SecretSourceFlag(parsing: $0) }
            var job = JobSpec(id: "build", steps: [], baseDirectory: cwd)
            job.cacheScope = scope
            for f in parsed { job.secrets[f.id] = SecretSpec(required: true) }
            for id in requiredIDs { job.secrets[id] = SecretSpec(required: true) }
            return try SecretStore.resolve(job: job, cliSecrets: parsed, policySecrets: policy.secrets,
                                           environment: environment, cwd: cwd)
        } catch {
            throw BuildError(.badInput, stage: "secret", "\(error)")
        }
    }
}
