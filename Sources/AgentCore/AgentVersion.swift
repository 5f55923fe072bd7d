/// The agent's version, written into status.json and printed by `agent --version`.
public enum AgentVersion {
    public static let current = "0.1.0"
}
