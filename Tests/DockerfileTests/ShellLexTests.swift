import Testing
@testable import Dockerfile

/// The variables of the expansion table.
let lexVars = Variables([("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", ""),
                         ("SPACES", "a  b"), ("PATHS", "/usr/local/bin"), ("FILE", "archive.tar.gz")])

/// BuildKit's documented expansion behaviour (docs.docker.com/reference/dockerfile/#environment-replacement
/// and its shell/lex.go), one row per rule: input, expected single-word result.
@Test(arguments: [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he\"ll\"o", "hello"),
    ("he\\'llo", "he'llo"),
    ("'a\"b'", "a\"b"),
    ("\"a'b\"", "a'b"),
    ("\"a\\\"b\"", "a\"b"),
    ("\"a\\b\"", "a\\b"),
    ("'a\\b'", "a\\b"),
    ("'$PWD'", "$PWD"),
    ("\"$PWD\"", "/home"),
    ("\\$PWD", "$PWD"),
    ("\"\\$PWD\"", "$PWD"),
    ("$PWD", "/home"),
    ("${PWD}", "/home"),
    ("he$PWD", "he/home"),
    ("$PWD/x", "/home/x"),
    ("${PWD}x", "/homex"),
    ("$PWDx", ""),
    ("$NOTSET", ""),
    ("${NOTSET}", ""),
    ("$", "$"),
    ("a$", "a$"),
    ("$.", "$."),
    ("$1", ""),
    ("${PWD:-x}", "/home"),
    ("${NOTSET:-x}", "x"),
    ("${NULL:-x}", "x"),
    ("${NULL-x}", ""),
    ("${NOTSET-x}", "x"),
    ("${PWD-x}", "/home"),
    ("${PWD:+x}", "x"),
    ("${NULL:+x}", ""),
    ("${NULL+x}", "x"),
    ("${NOTSET+x}", ""),
    ("${NOTSET:+x}", ""),
    ("${PWD:?}", "/home"),
    ("${NULL?}", ""),
    ("${NOTSET:-${PWD}}", "/home"),
    ("${NOTSET:-${ALSO:-deep}}", "deep"),
    ("${NOTSET:-\"a b\"}", "a b"),
    ("${NOTSET:-'$PWD'}", "$PWD"),
    ("${NOTSET:-a\\}b}", "a}b"),
    ("${PWD#/}", "home"),
    ("${PATHS#*/}", "usr/local/bin"),
    ("${PATHS##*/}", "bin"),
    ("${FILE%.*}", "archive.tar"),
    ("${FILE%%.*}", "archive"),
    ("${FILE#nomatch}", "archive.tar.gz"),
    ("${SHELL/a/o}", "bosh"),
    ("${PATHS//\\//:}", ":usr:local:bin"),
    ("${PATHS/\\/usr/}", "/local/bin"),
    ("${KOREAN}", "한국어"),
    ("${KOREAN:-x}", "한국어"),
    ("a b  c", "a b  c"),
    ("\\\\", "\\"),
    ("abc\\", "abc"),
    ("<<EOF", "<<EOF"),
])
func expansionFollowsBuildKit(input: String, expected: String) throws {
    #expect(try ShellLex().expand(input, lexVars) == expected)
}

/// Inputs BuildKit refuses, with the message part it gives.
@Test(arguments: [
    ("he'llo", "unexpected end of statement while looking for matching single-quote"),
    ("\"abc", "unexpected end of statement while looking for matching double-quote"),
    ("${PWD", "syntax error: missing '}'"),
    ("${", "syntax error: missing '}'"),
    ("${}", "syntax error: bad substitution"),
    ("${:x}", "syntax error: bad substitution"),
    ("${NOTSET:?}", "NOTSET: is not allowed to be unset"),
    ("${NOTSET?}", "NOTSET: is not allowed to be unset"),
    ("${NULL:?}", "NULL: is not allowed to be empty"),
    ("${NOTSET?oops}", "NOTSET: oops"),
    ("${NULL:?must be set}", "NULL: must be set"),
    ("${PWD:#x}", "unsupported modifier (:#) in substitution"),
    ("${PWD*x}", "unsupported modifier (*) in substitution"),
    ("${PWD/x}", "syntax error: missing '/' in ${}"),
])
func expansionErrorsNameTheProblem(input: String, message: String) {
    do {
        _ = try ShellLex().expand(input, lexVars)
        Issue.record("\(input) expanded")
    } catch {
        #expect(error.message == "failed to process \"\(input)\": \(message)")
    }
}

@Test(arguments: [
    ("hello world", ["hello", "world"]),
    ("  hello   world  ", ["hello", "world"]),
    ("\"hello world\"", ["hello world"]),
    ("'hello  world'", ["hello  world"]),
    ("$SPACES", ["a", "b"]),
    ("\"$SPACES\"", ["a  b"]),
    ("x$SPACES", ["xa", "b"]),
    ("a\\ b", ["a b"]),
    ("$NOTSET", []),
    ("\"\"", []),
    ("8080 $PWD", ["8080", "/home"]),
])
func wordSplittingFollowsBuildKit(input: String, expected: [String]) throws {
    #expect(try ShellLex().expandWords(input, lexVars) == expected)
}

@Test func backtickEscapeQuotesLikeBackslash() throws {
    let lex = ShellLex(escape: "`")
    #expect(try lex.expand("a`$PWD", lexVars) == "a$PWD")
    #expect(try lex.expand("c:\\dir", lexVars) == "c:\\dir")
    #expect(try lex.expand("\"a`\"b\"", lexVars) == "a\"b")
}

@Test func trackingReportsMatchedAndUnmatchedNames() throws {
    let r = try ShellLex().expandTracking("$PWD ${NOTSET:-x} $NULL", lexVars)
    #expect(r.result == "/home x ")
    #expect(r.matched == ["PWD", "NULL"])
    #expect(r.unmatched == ["NOTSET"])
}

@Test func expansionOutputIsBounded() {
    let big = String(repeating: "x", count: DockerfileLimits.maxExpansionBytes / 2 + 1)
    let vars = Variables([("B", big)])
    #expect(throws: ExpansionError.self) { try ShellLex().expand("$B$B", vars) }
    #expect(throws: ExpansionError.self) { try ShellLex().expand("${B/x/\(big)}", vars) }
}

@Test func deepNestingIsRefused() {
    let deep = String(repeating: "${A:-", count: 64) + "x" + String(repeating: "}", count: 64)
    #expect(throws: ExpansionError.self) { try ShellLex().expand(deep, Variables()) }
}

@Test func skipUnsetKeepsUnknownVariablesAsWritten() throws {
    var lex = ShellLex()
    lex.skipUnsetVariables = true
    #expect(try lex.expand("$PWD $NOPE ${NOPE} ${NOPE:-d}", lexVars) == "/home $NOPE ${NOPE} ${NOPE:-d}")
}

@Test func patternWorkOnLongValuesIsBounded() throws {
    let long = String(repeating: "a", count: 200_000)
    let vars = Variables([("L", long)])
    // Linear for # and %: these finish at once.
    #expect(try ShellLex().expand("${L##*a}", vars) == "")
    #expect(try ShellLex().expand("${L%a}", vars).count == 199_999)
    #expect(try ShellLex().expand("${L#*}", vars).count == 200_000)
    // A pattern that fails at every start of a long value is refused, not run for hours.
    #expect(throws: ExpansionError.self) { try ShellLex().expand("${L//a*b/x}", vars) }
    // One that matches at once is fine.
    #expect(try ShellLex().expand("${L//a/b}", vars) == String(repeating: "b", count: 200_000))
}

@Test func envDoublingIsStoppedByTheBound() throws {
    var text = "FROM scratch\nENV A=" + String(repeating: "x", count: 1000) + "\n"
    for _ in 0..<12 { text += "ENV A=$A$A\n" }
    let df = try Dockerfile.parse(text)
    let plan = try BuildPlan(df)
    var state = try plan.stageState(for: 0, base: ImageConfig())
    var failed: DockerfileError?
    for inst in df.stages[0].instructions {
        do { _ = try state.apply(inst) } catch { failed = error; break }
    }
    #expect(failed?.code == .expansion)
    #expect(failed?.line == 11)
}
