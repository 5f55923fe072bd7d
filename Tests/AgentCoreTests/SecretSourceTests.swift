import Testing
@testable import AgentCore

/// `--secret` flag parsing: BuildKit's syntax and its errors.
@Suite struct SecretSourceTests {
    @Test func fileSource() throws {
        let flag = try SecretSourceFlag(parsing: "id=mysecret,src=mysecret.txt")
        #expect(flag.id == "mysecret")
        #expect(flag.source == .file("mysecret.txt"))
        #expect(flag.text == "id=mysecret,src=mysecret.txt")
    }

    @Test func sourceIsASynonymOfSrc() throws {
        #expect(try SecretSourceFlag(parsing: "id=a,source=/etc/a").source == .file("/etc/a"))
    }

    @Test func envSource() throws {
        let flag = try SecretSourceFlag(parsing: "id=token,env=CI_TOKEN")
        #expect(flag.id == "token")
        #expect(flag.source == .env("CI_TOKEN"))
    }

    @Test func idAloneIsAutomatic() throws {
        #expect(try SecretSourceFlag(parsing: "id=x").source == .automatic)
    }

    @Test func typeEnvTakesTheVariableFromSrc() throws {
        #expect(try SecretSourceFlag(parsing: "type=env,id=x,src=NAME").source == .env("NAME"))
        #expect(try SecretSourceFlag(parsing: "type=env,id=x,env=NAME").source == .env("NAME"))
        #expect(try SecretSourceFlag(parsing: "type=env,id=x").source == .env("x"))
    }

    @Test func typeFile() throws {
        #expect(try SecretSourceFlag(parsing: "type=file,id=x,src=f").source == .file("f"))
        #expect(try SecretSourceFlag(parsing: "type=file,id=x").source == .file("x"))
    }

    @Test func keysAreCaseInsensitive() throws {
        let flag = try SecretSourceFlag(parsing: "ID=x,Src=f.txt")
        #expect(flag.id == "x")
        #expect(flag.source == .file("f.txt"))
    }

    @Test func quotedCSVFieldsMayHoldCommas() throws {
        let flag = try SecretSourceFlag(parsing: #"id=x,"src=a,b.txt""#)
        #expect(flag.source == .file("a,b.txt"))
        #expect(try SecretSourceFlag(parsing: #""src=say ""hi""",id=y"#).source == .file(#"say "hi""#))
    }

    @Test func valuesMayContainEquals() throws {
        #expect(try SecretSourceFlag(parsing: "id=x,src=a=b").source == .file("a=b"))
    }

    @Test(arguments: [
        ("", "empty"),
        ("src=a.txt", "missing id="),
        ("id=", "missing id="),
        ("id=x,foo=bar", #"unexpected key "foo" in "foo=bar""#),
        ("id=x,src", #"invalid field "src": must be a key=value pair"#),
        ("id=x,", #"invalid field "": must be a key=value pair"#),
        ("id=x,type=ssh", #"unsupported secret type "ssh""#),
        ("id=x,src=a,env=B", "both src= and env= are given"),
        ("id=x,src=", "src= is empty"),
        ("id=x,env=", "env= is empty"),
        ("type=file,id=x,env=B", "type=file with env="),
        (#"id=x,"src=a"#, "unterminated quoted field"),
        (#"id=x,src=a"b"#, "bare \" in a non-quoted field"),
        (#""id=x"y"#, "extraneous text after a quoted field"),
    ])
    func errorsNameTheFlagAndTheProblem(text: String, expected: String) {
        do {
            _ = try SecretSourceFlag(parsing: text)
            Issue.record("expected \(text) to be refused")
        } catch let error as SecretError {
            guard case .invalidFlag(let flag, let reason) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(flag == text)
            #expect(reason.contains(expected), "\(reason)")
            #expect(error.description.hasPrefix("--secret \(SecretError.quote(text)): "))
            #expect(error.exitCode == 2)
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }
}
