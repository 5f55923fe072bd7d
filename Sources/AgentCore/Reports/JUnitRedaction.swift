/// Redaction of a JUnit model before it is rendered.
///
/// Test reports are untrusted: a test may print a secret into a failure message, a test
/// name or its `system-out`. The reader has already decoded XML entities, so the parsed
/// strings hold the secret as it is (`p&ss<w0rd`, not `p&amp;ss&lt;w0rd`), which is the
/// form the job's matcher knows. Redacting here, before `JUnitWriter` clips, sanitizes
/// and escapes, means no later transformation can hide a secret from the matcher (an
/// escaped `&amp;` form) or cut it in half (the clip marker lands inside `***` at worst).
extension JUnitReport {
    /// The report with every string (suite, case and class names, packages, host names,
    /// properties, messages, types, texts, `system-out` and `system-err`) passed through
    /// `redact`. Counts and times are not text and stay as they are.
    public func redacted(by redact: (String) -> String) -> JUnitReport {
        JUnitReport(suites: suites.map { $0.redacted(by: redact) })
    }
}

extension JUnitSuite {
    /// The suite with every string passed through `redact` (see `JUnitReport.redacted(by:)`).
    public func redacted(by redact: (String) -> String) -> JUnitSuite {
        var out = self
        out.name = redact(name)
        out.package = package.map(redact)
        out.hostname = hostname.map(redact)
        out.properties = properties.map { JUnitProperty(name: redact($0.name), value: redact($0.value)) }
        out.testCases = testCases.map { $0.redacted(by: redact) }
        out.systemOut = redact(systemOut)
        out.systemErr = redact(systemErr)
        return out
    }
}

extension JUnitTestCase {
    /// The case with its names and its result's texts passed through `redact`.
    public func redacted(by redact: (String) -> String) -> JUnitTestCase {
        var out = self
        out.name = redact(name)
        out.classname = redact(classname)
        switch result {
        case .passed:
            break
        case .skipped(let message, let text):
            out.result = .skipped(message: message.map(redact), text: redact(text))
        case .failure(let problem):
            out.result = .failure(problem.redacted(by: redact))
        case .error(let problem):
            out.result = .error(problem.redacted(by: redact))
        }
        return out
    }
}

extension JUnitProblem {
    /// The problem with its message, type and text passed through `redact`.
    public func redacted(by redact: (String) -> String) -> JUnitProblem {
        JUnitProblem(message: message.map(redact), type: redact(type), text: redact(text))
    }
}
