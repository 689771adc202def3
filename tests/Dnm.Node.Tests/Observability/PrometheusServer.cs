using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Dnm.Tests.Shared;

namespace Dnm.Node.Tests.Observability;

/// <summary>
/// A real Prometheus (Debian's `prometheus` package) run for one test: its own config, storage and port
/// under a scratch directory, scraping the given targets every <see cref="ScrapeInterval"/>. Never the packaged service.
/// </summary>
public sealed class PrometheusServer : IDisposable
{
    private readonly Process process;
    private readonly HttpClient http;
    private readonly Task<string> log;

    private PrometheusServer(Process process, int port)
    {
        this.process = process;
        http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(10) };
        // Prometheus logs to stderr; drained continuously so a full pipe never blocks it.
        log = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
    }

    /// <summary>
    /// Short, so that even a run of a second or two on a fast machine is scraped several times; the
    /// dashboard's rate windows (one minute in the specs) still hold many samples.
    /// </summary>
    public const string ScrapeInterval = "250ms";

    /// <summary>The prometheus binary on PATH, or null.</summary>
    public static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "prometheus"))
            .FirstOrDefault(File.Exists);

    public static async Task<PrometheusServer> StartAsync(string binary, string directory, IEnumerable<string> targets)
    {
        var config = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: {ScrapeInterval}
              scrape_timeout: {ScrapeInterval}
            scrape_configs:
              - job_name: dnm
                static_configs:
                  - targets: [{string.Join(", ", targets.Select(t => $"'{t}'"))}]
            """);
        var port = TestPorts.Next();
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        foreach (var arg in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "tsdb")}",
                     $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn" })
            start.ArgumentList.Add(arg);
        var server = new PrometheusServer(Process.Start(start)!, port);
        try
        {
            await server.WaitReadyAsync();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Evaluates <paramref name="promql"/> at <paramref name="time"/> (Unix seconds); returns the API's "data".</summary>
    public Task<JsonElement> QueryAsync(string promql, double time) =>
        GetAsync($"api/v1/query?query={Uri.EscapeDataString(promql)}&time={time.ToString("F3", CultureInfo.InvariantCulture)}");

    public Task<JsonElement> QueryRangeAsync(string promql, double start, double end) =>
        GetAsync($"api/v1/query_range?query={Uri.EscapeDataString(promql)}&start={start.ToString("F3", CultureInfo.InvariantCulture)}" +
                 $"&end={end.ToString("F3", CultureInfo.InvariantCulture)}&step=0.25");

    private async Task<JsonElement> GetAsync(string url)
    {
        using var response = await http.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"prometheus answered {(int)response.StatusCode} to {url}: {body}");
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("data").Clone();
    }

    /// <summary>
    /// Waits until Prometheus has tried to scrape every target at least once. Its scrape manager applies
    /// a new target list only every few seconds after start-up, so a short run started right after
    /// "ready" could be over before its first scrape.
    /// </summary>
    public async Task WaitScrapingAsync(int targets)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            var active = (await GetAsync("api/v1/targets?state=active")).GetProperty("activeTargets").EnumerateArray()
                .Count(t => t.GetProperty("lastScrape").GetDateTimeOffset().Year > 2000);
            if (active >= targets) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"prometheus did not start scraping its {targets} targets within 60 s");
    }

    private async Task WaitReadyAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited) throw new InvalidOperationException($"prometheus exited with {process.ExitCode}: {await log}");
            try
            {
                using var response = await http.GetAsync("-/ready");
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(200);
        }
        throw new TimeoutException("prometheus was not ready within 30 s");
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }
        process.Dispose();
        http.Dispose();
    }
}
