import Foundation
import Testing

/// The image config's `User` is the default user of steps that name none and of
/// `agent exec --image` without `--user` (images from ci/make-test-images.py: numeric
/// `1234:2345`, `builder` and `builder:staff` from the image's own passwd and group, and
/// `nobody-here`, whom the image does not know).
@Suite(.serialized) struct ImageUserTests {
    let state: String
    init() throws { state = try Harness.scratch("image-user") + "/state" }

    func exec(_ image: String, _ extra: [String] = []) async throws -> Harness.Result {
        try await Harness.exec(["--state-dir", state, "--policy", ImageTests.policy] + extra + ["--image", ImageTests.ref(image)],
                               ["/bin/sh", "-c", "echo $(id -u):$(id -g)"])
    }

    @Test(arguments: [("user-numeric", "1234:2345"), ("user-name", "1500:1600"), ("user-name-group", "1500:1700"),
                      ("busybox", "0:0")])
    func execRunsAsTheImagesUser(image: String, ids: String) async throws {
        let r = try await exec(image)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == ids + "\n", "\(r.stdout)")
    }

    @Test func execUserOverridesTheImagesUser() async throws {
        let r = try await exec("user-name", ["--user", "42:43"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "42:43\n", "\(r.stdout)")
        // --user also wins over a User the image cannot resolve.
        let missing = try await exec("user-missing", ["--user", "0"])
        #expect(missing.status == 0, "\(missing.stderr)")
    }

    @Test func anUnknownUserNameIsAnErrorNamingTheImageAndTheUser() async throws {
        let r = try await exec("user-missing")
        #expect(r.status == 125, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("image \(ImageTests.ref("user-missing")): User \"nobody-here\": no such user in the image's /etc/passwd"),
                "\(r.stderr)")
        let f = try JobFixture("""
        {"version": 1, "id": "user-missing", "image": "\(ImageTests.ref("user-missing"))", "steps": [{"name": "a", "run": "true"}]}
        """)
        let job = try await f.run(["--policy", ImageTests.policy])
        #expect(job.status == 3, "\(job.stderr)")
        #expect(job.stderr.contains("User \"nobody-here\""), "\(job.stderr)")
        // A job whose every step names its user never needs the image's User.
        let named = try JobFixture("""
        {"version": 1, "id": "user-named", "image": "\(ImageTests.ref("user-missing"))", "steps": [{"name": "a", "run": "true", "user": "0"}]}
        """)
        #expect(try await named.run(["--policy", ImageTests.policy]).status == 0)
    }

    @Test func jobStepsWithoutAUserRunAsTheImagesUserAndOthersAsTheirOwn() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "user-job", "image": "\(ImageTests.ref("user-name-group"))", "steps": [
          {"name": "image-user", "run": "echo ids $(id -u):$(id -g) home $HOME"},
          {"name": "own-user", "run": "echo ids $(id -u):$(id -g)", "user": "7:8"}
        ]}
        """)
        let r = try await f.run(["--policy", ImageTests.policy])
        #expect(r.status == 0, "\(r.stderr)")
        let log = try f.read("logs/01-image-user.log")
        #expect(log.contains(" out ids 1500:1700 home /tmp"), "\(log)")
        #expect(try f.read("logs/02-own-user.log").contains(" out ids 7:8"))
    }
}
