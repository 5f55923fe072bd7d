import Foundation
import Testing

/// A real job with hostile secrets (`& < > " '`, a control character, UTF-8): a test
/// writes them XML-escaped into its report (names, messages, a 100 KB failure text cut
/// across them), a build step names artifacts and a symlink target after them, and every
/// byte, file name and link target of the results folder is then searched for them.
@Suite(.serialized) struct RedactionJobTests {
    static let secrets = ["amp": "p&ss<w0rd-42\"'", "utf": "pässwörd-секрет", "ctl": "tok\u{1b}en-12345"]

    /// The report: `amp` straddles the end of the first quarter `XMLText.clip` keeps of a
    /// 64 KiB failure text, `utf` the start of its last three quarters (padding sized so:
    /// head = 16384 bytes, tail = 49152 bytes of the decoded text).
    static let script = #"""
    set -e
    amp=$(cat /run/secrets/amp); utf=$(cat /run/secrets/utf)
    esc() { printf %s "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' -e "s/'/\&apos;/g"; }
    pad() { head -c "$1" /dev/zero | tr '\0' "$2"; }
    a=$(esc "$amp"); u=$(esc "$utf")
    mkdir -p /tmp/reports
    {
      printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="suite %s">\n' "$a"
      printf '<properties><property name="pw" value="%s"/></properties>\n' "$u"
      printf '<testcase name="login %s" classname="c.%s"><failure message="login failed for %s" type="%s">' "$a" "$u" "$a" "$u"
      pad 16380 x; printf %s "$a"; pad 36850 y; printf %s "$u"; pad 49139 z
      printf '</failure></testcase>\n<system-out>out %s %s</system-out>\n</testsuite>\n' "$a" "$u"
    } > /tmp/reports/TEST-hostile.xml
    printf 'ctl %s\n' "$(cat /run/secrets/ctl)"
    """#

    static let build = #"""
    set -e
    mkdir -p dist
    echo ok > dist/ok.txt
    echo x > "dist/$(cat /run/secrets/amp).txt"
    mkdir -p "dist/$(cat /run/secrets/ctl)" && echo y > "dist/$(cat /run/secrets/ctl)/inner.txt"
    echo z > "dist/$(cat /run/secrets/utf)"
    ln -s "$(cat /run/secrets/utf)" dist/link
    """#

    /// Raw, XML-escaped, JSON-escaped and control-picture forms of each secret and its halves.
    static func forms(_ secret: String) -> [String] {
        let chars = Array(secret)
        var out: [String] = []
        for text in [secret, String(chars[..<(chars.count / 2)]), String(chars[(chars.count / 2)...])] {
            let xml = text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            out += [text, xml, xml.replacingOccurrences(of: "\"", with: "&quot;"), xml.replacingOccurrences(of: "'", with: "&apos;"),
                    text.replacingOccurrences(of: "\"", with: "\\\""), text.replacingOccurrences(of: "\u{1b}", with: "\\u001b"),
                    text.replacingOccurrences(of: "\u{1b}", with: "\u{241b}")]
        }
        return Array(Set(out))
    }

    /// Every file's bytes, every entry's name and every symlink's target below `dir`.
    static func leaks(in dir: String) -> [String] {
        var found: [String] = []
        let all = secrets.flatMap { id, s in forms(s).map { (id, $0) } }
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return ["cannot read \(dir)"] }
        while let rel = walker.nextObject() as? String {
            let path = dir + "/" + rel
            var texts = [("name", rel)]
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFLNK, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                texts.append(("link target", target))
            } else if st.st_mode & S_IFMT == S_IFREG, let data = FileManager.default.contents(atPath: path) {
                for (id, form) in all where data.range(of: Data(form.utf8)) != nil { found.append("\(rel): bytes hold \(id) as \(form.debugDescription)") }
            }
            for (what, text) in texts {
                for (id, form) in all where text.contains(form) { found.append("\(rel): \(what) holds \(id)") }
            }
        }
        return found
    }

    @Test func hostileSecretsAreMaskedInEveryResultFile() async throws {
        let f = try JobFixture("""
        {"version": 1, "id": "redact", "workspace": "src", "steps": [
          {"name": "build", "run": ["/bin/sh", "build.sh"],
           "mounts": ["type=secret,id=amp", "type=secret,id=utf", "type=secret,id=ctl"]},
          {"name": "unit", "type": "test", "run": ["/bin/sh", "suite.sh"], "reports": ["/tmp/reports/*.xml"],
           "mounts": ["type=secret,id=amp", "type=secret,id=utf", "type=secret,id=ctl"]}
        ],
        "artifacts": [{"name": "dist", "paths": ["dist/**"], "when": "always"}]}
        """, files: ["src/suite.sh": Self.script, "src/build.sh": Self.build, "amp.txt": Self.secrets["amp"]!,
                     "utf.txt": Self.secrets["utf"]!, "ctl.txt": Self.secrets["ctl"]!])
        let flags = ["amp", "utf", "ctl"].flatMap { ["--secret", "id=\($0),src=\(f.dir)/\($0).txt"] }
        let r = try await f.run(flags)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(try f.stepStates() == ["succeeded", "failed"])

        #expect(Self.leaks(in: f.results) == [])
        for (id, s) in Self.secrets {
            for form in Self.forms(s) { #expect(!r.stderr.contains(form), "progress shows \(id)") }
        }
        let junit = try f.read("junit.xml")
        #expect(junit.contains("login failed for ***"), "\(junit.prefix(2000))")
        #expect(junit.contains("name=\"login ***\""))
        #expect(junit.contains("bytes cut ..."))
        #expect(junit.contains("ctl ***"))
        let errors = (try f.status()["artifacts"] as? [String: Any])?["errors"] as? [String] ?? []
        #expect(errors.contains("artifact \"dist\": dist/dist/***.txt was not kept: its name contains secret \"amp\""), "\(errors)")
        #expect(errors.contains("artifact \"dist\": dist/dist/link was not kept: its symlink target contains secret \"utf\""), "\(errors)")
        #expect(errors.contains { $0.contains("dist/dist/***/inner.txt") && $0.contains("\"ctl\"") }, "\(errors)")
        #expect(FileManager.default.fileExists(atPath: f.results + "/artifacts/dist/dist/ok.txt"))
    }
}
