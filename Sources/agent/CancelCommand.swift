import AgentCore
import ArgumentParser
import AgentSupport
import FoundationEssentials
import Glibc

/// `agent cancel JOBS_DIR ID`: cancel a queued or running job.
/// Exit codes: 0 cancelled (queued) or requested (running), 1 no such job, 2 bad input.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued or running job of a queue directory.",
        discussion: """
        A queued job moves to failed/ID with state "cancelled". For a running job a request is \
        left in cancel/; its agent cancels the job within a second and still writes its \
        results (failed/ID, state "cancelled"). Exit codes: 0 done, 1 no such job, 2 bad input.
        """
    )

    @Argument(help: "The queue directory.")
    var jobsDir: String

    @Argument(help: "The job id: its file name in incoming/ without .json.")
    var id: String

    func run() async throws {
        guard FileManager.default.fileExists(atPath: jobsDir + "/incoming") else {
            fail("\(jobsDir): not a queue directory (no incoming/)", code: 2)
        }
        let store = QueueStore(layout: QueueLayout(root: jobsDir), agentID: "cancel-\(getpid())",
                               host: WatchOptions().host)
        do {
            switch try store.cancel(id: id) {
            case .cancelledQueued(let path):
                print("cancelled queued job \(id): \(path)")
            case .requested(let agent, _):
                print("cancel requested for running job \(id)" + (agent.map { " (agent \($0))" } ?? ""))
            }
        } catch let error as QueueError {
            switch error {
            case .noSuchJob: fail("\(error)", code: 1)
            case .invalidJobID, .layout: fail("\(error)", code: 2)
            default: fail("\(error)", code: 3)
            }
        }
    }
}
