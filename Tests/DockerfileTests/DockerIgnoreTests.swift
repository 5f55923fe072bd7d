import Testing
@testable import Dockerfile

func ignore(_ text: String) throws -> DockerIgnore { try DockerIgnore(text: text) }

/// moby/patternmatcher's behaviour: pattern file, path, excluded?
@Test(arguments: [
    ("*.log", "a.log", true),
    ("*.log", "d/a.log", false),                 // * stops at /
    ("**/*.log", "d/e/a.log", true),
    ("**/*.log", "a.log", true),
    ("node_modules", "node_modules", true),
    ("node_modules", "node_modules/x/y.js", true),  // a matching folder takes its content
    ("node_modules", "src/node_modules", false),
    ("**/node_modules", "src/node_modules/x", true),
    ("/abs", "abs", true),                        // leading / is the context root
    ("./dot/x", "dot/x", true),
    ("a/../b", "b", true),
    ("a/**/b", "a/b", true),
    ("a/**/b", "a/x/y/b", true),
    ("a/**/b", "a/x/y/c", false),
    ("a/**", "a/x/y", true),
    ("a/**", "ab", false),
    ("**", "anything/at/all", true),
    ("?.txt", "a.txt", true),
    ("?.txt", "ab.txt", false),
    ("[a-c].txt", "b.txt", true),
    ("[a-c].txt", "d.txt", false),
    ("[^a-c].txt", "d.txt", true),
    ("\\*.txt", "*.txt", true),
    ("\\*.txt", "a.txt", false),
    ("  spaced.txt  ", "spaced.txt", true),
    ("# comment", "# comment", false),
    (" #not-a-comment", "#not-a-comment", true),    // only a # in the first column comments
    ("*.md\n!README.md", "README.md", false),
    ("*.md\n!README.md", "CHANGES.md", true),
    ("!README.md\n*.md", "README.md", true),        // the last match wins
    ("docs\n!docs/keep.md", "docs/keep.md", false),
    ("docs\n!docs/keep.md", "docs/other.md", true),
    ("*\n!src\nsrc/*.tmp", "src/a.tmp", true),
    ("*\n!src\nsrc/*.tmp", "src/a.c", false),
    ("Dockerfile\n.dockerignore", "Dockerfile", true),
    ("", "x", false),
])
func patternsMatchAsMobyDoes(patterns: String, path: String, excluded: Bool) throws {
    #expect(try ignore(patterns).isExcluded(path) == excluded)
}

@Test func exceptionsDecideWhetherAnExcludedFolderIsEntered() throws {
    let i = try ignore("docs\nbuild\n!docs/keep.md\n!**/important")
    #expect(i.isExcluded("docs"))
    #expect(i.mayReinclude(beneath: "docs"))
    #expect(i.mayReinclude(beneath: "build"))     // **/important could match inside
    let j = try ignore("docs\nbuild\n!docs/keep.md")
    #expect(!j.mayReinclude(beneath: "build"))
    #expect(!j.mayReinclude(beneath: "docs/sub"))
    #expect(j.mayReinclude(beneath: "docs"))
    #expect(try !ignore("build").mayReinclude(beneath: "build"))
    #expect(try ignore("*\n!src/*/x.c").mayReinclude(beneath: "src/lib"))
    #expect(try !ignore("*\n!src/*/x.c").mayReinclude(beneath: "other/lib"))
}

@Test func patternsAreCleanedAndKept() throws {
    let i = try ignore("\u{FEFF}# c\n\n/a/b/\n!./c\n  ! d  \n")
    #expect(i.patterns.map(\.text) == ["a/b", "c", "d"])
    #expect(i.patterns.map(\.isException) == [false, true, true])
    #expect(i.hasExceptions)
}

@Test func loneExclamationIsAnError() {
    #expect(throws: DockerfileError.self) { try ignore("a\n!\n") }
    do { _ = try ignore("a\n!\n") } catch let error as DockerfileError {
        #expect(error.description == ".dockerignore:2: illegal exclusion pattern: \"!\"")
    } catch { Issue.record("\(error)") }
}
