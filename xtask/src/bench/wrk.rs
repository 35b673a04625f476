//! What a `wrk --latency` run printed: requests per second, latency percentiles and errors.

use anyhow::{Context, bail};

/// The figures of one wrk run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WrkResult {
    /// Completed requests per second over the whole run.
    pub(crate) requests_per_sec: f64,
    /// Completed requests.
    pub(crate) requests: u64,
    /// Median latency in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th-percentile latency in milliseconds.
    pub(crate) p99_ms: f64,
    /// Answers outside 2xx and 3xx.
    pub(crate) non_2xx: u64,
    /// Connect, read and write errors and timeouts together.
    pub(crate) socket_errors: u64,
}

impl WrkResult {
    /// Every request that did not get a good answer.
    pub(crate) fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }
}

/// Parses the standard output of `wrk --latency`.
///
/// # Errors
///
/// When the requests per second, the request count or the latency distribution are missing,
/// which means the run did not complete.
pub(crate) fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut requests_per_sec = None;
    let mut requests = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;

    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(number(value.trim())?);
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = value.trim().parse().with_context(|| format!("bad wrk line {line:?}"))?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            socket_errors = socket_error_total(value)?;
        } else if let Some(value) = line.strip_prefix("50%") {
            p50_ms = Some(latency_ms(value.trim())?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_ms = Some(latency_ms(value.trim())?);
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(count.parse().with_context(|| format!("bad wrk line {line:?}"))?);
        }
    }

    let missing = |what: &str| format!("wrk printed no {what}; was --latency given?\n{output}");
    Ok(WrkResult {
        requests_per_sec: requests_per_sec.with_context(|| missing("Requests/sec"))?,
        requests: requests.with_context(|| missing("request count"))?,
        p50_ms: p50_ms.with_context(|| missing("50% latency"))?,
        p99_ms: p99_ms.with_context(|| missing("99% latency"))?,
        non_2xx,
        socket_errors,
    })
}

/// `connect 0, read 12, write 0, timeout 3` summed.
fn socket_error_total(value: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for part in value.split(',') {
        let count = part.split_whitespace().nth(1).unwrap_or_default();
        total +=
            count.parse::<u64>().with_context(|| format!("bad wrk socket errors {value:?}"))?;
    }
    Ok(total)
}

/// A wrk duration such as `512.00us`, `1.64ms`, `1.20s` or `1.05m`, in milliseconds.
fn latency_ms(value: &str) -> anyhow::Result<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let (amount, unit) = value.split_at(split);
    let amount = number(amount)?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("unknown wrk time unit in {value:?}, expected us, ms, s, m or h"),
    };
    Ok(amount * scale)
}

fn number(value: &str) -> anyhow::Result<f64> {
    value.parse().with_context(|| format!("expected a number from wrk, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
Running 20s test @ http://127.0.0.1:40111/api/kms/encryption-config
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.31us  401.22us  14.10ms   80.50%
    Req/Sec    31.02k     2.11k   36.40k    71.25%
  Latency Distribution
     50%  740.00us
     75%    0.98ms
     90%    1.27ms
     99%    2.03ms
  1234567 requests in 20.00s, 1.02GB read
Requests/sec:  61728.35
Transfer/sec:     52.10MB
";

    const FAILING: &str = "\
Running 2s test @ http://127.0.0.1:18777/nonexistent
  2 threads and 4 connections
  Latency Distribution
     50%    1.64ms
     75%    5.17ms
     90%    9.28ms
     99%    1.20s
  2953 requests in 2.01s, 1.46MB read
  Socket errors: connect 0, read 12, write 1, timeout 3
  Non-2xx or 3xx responses: 2953
Requests/sec:   1467.69
Transfer/sec:    745.31KB
";

    #[test]
    fn a_clean_run() {
        let result = parse(CLEAN).unwrap();
        assert_eq!(result.requests, 1_234_567);
        assert!((result.requests_per_sec - 61_728.35).abs() < 1e-9);
        assert!((result.p50_ms - 0.74).abs() < 1e-9);
        assert!((result.p99_ms - 2.03).abs() < 1e-9);
        assert_eq!(result.errors(), 0);
    }

    #[test]
    fn errors_and_slow_percentiles() {
        let result = parse(FAILING).unwrap();
        assert_eq!(result.non_2xx, 2953);
        assert_eq!(result.socket_errors, 16);
        assert_eq!(result.errors(), 2969);
        assert!((result.p99_ms - 1200.0).abs() < 1e-9);
    }

    #[test]
    fn a_run_without_latency_distribution_is_refused() {
        let output = CLEAN.replace("     50%  740.00us\n", "");
        let err = parse(&output).unwrap_err().to_string();
        assert!(err.contains("50% latency"), "{err}");
        assert!(latency_ms("3.5parsecs").is_err());
    }
}
