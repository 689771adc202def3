using System.Text.Json;
using System.Text.RegularExpressions;

namespace Dnm.Node.Tests.Observability;

/// <summary>
/// The Grafana dashboard is only as good as its queries: every panel's PromQL, read from
/// deploy/grafana/dnm-training.json, must return data from a real Prometheus that scraped a real run.
/// </summary>
[Collection(ObservedRunCollection.Name)]
public sealed class DashboardSpec(ObservedRunFixture fixture)
{
    /// <summary>
    /// Metrics only a CUDA run reports (the device's memory, through NVML). The observed run trains on
    /// the CPU, so their queries must return nothing — proof they are skipped, not broken — while their
    /// panel still shows data from its other queries.
    /// </summary>
    private static readonly string[] CudaOnlyMetrics = ["dnm_device_memory_used_bytes", "dnm_device_memory_total_bytes"];

    public static string DashboardPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "deploy", "grafana", "dnm-training.json");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException("deploy/grafana/dnm-training.json not found above " + AppContext.BaseDirectory);
    }

    [NeedsPrometheusFact]
    public async Task Every_dashboard_panel_should_return_data_from_prometheus_scraping_a_real_run()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        var prometheus = run.Prometheus ?? throw new InvalidOperationException(
            "prometheus is not installed: apt-get install prometheus (CI installs it in .ci/run)");
        var at = await run.LastScrapedAsync(prometheus);
        // "Waits until it has scraped": the whole short run must have been seen several times over. The
        // failed scrapes from before the process listened count as up=0, so the sum counts only successes.
        var scrapes = await prometheus.QueryAsync("sum_over_time(up{job=\"dnm\"}[10m])", at);
        Assert.True(ScalarsOf(scrapes).All(n => n >= 3), $"too few scrapes of the run: {scrapes}");

        var dashboard = Dashboard.Load(DashboardPath());
        Assert.NotEmpty(dashboard.Panels);
        var failures = new List<string>();
        foreach (var panel in dashboard.Panels)
        {
            Assert.True(panel.Queries.Count > 0, $"panel '{panel.Title}' has no query");
            var panelHasData = false;
            foreach (var expr in panel.Queries)
            {
                var query = dashboard.Substitute(expr);
                var values = ScalarsOf(await prometheus.QueryAsync(query, at));
                var cudaOnly = CudaOnlyMetrics.Any(expr.Contains);
                if (cudaOnly)
                {
                    if (values.Length > 0) failures.Add($"'{panel.Title}': {query} returned data on a CPU run");
                    continue;
                }
                if (values.Length == 0) failures.Add($"'{panel.Title}': {query} returned no data");
                else if (!values.Any(double.IsFinite)) failures.Add($"'{panel.Title}': {query} returned only NaN/Inf");
                else panelHasData = true;
            }
            if (!panelHasData) failures.Add($"panel '{panel.Title}' shows nothing");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [NeedsPrometheusFact]
    public async Task Scraped_numbers_should_match_what_the_run_did_and_printed()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        var prometheus = run.Prometheus!;
        var at = await run.LastScrapedAsync(prometheus);
        // Each process's final numbers: its last scrape came after its run ended (every dnm process waits for one),
        // but the processes end at different moments, so no one instant has every process's last scrape behind it.
        // last_over_time over the whole run, evaluated after it, reads each series' last sample (staleness markers
        // are not samples).
        var end = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        async Task<double[]> Query(string promql) => ScalarsOf(await prometheus.QueryAsync(promql, end));
        static string Last(string selector) => $"last_over_time({selector}[10m])";

        // 2 pre-training + 6 joint epochs of 512/16 = 32 steps, taken by the coordinator and by each worker process.
        Assert.Equal(new[] { 256.0 }, await Query(Last("dnm_train_steps_total{job=\"dnm\", role=\"coordinator\"}")));
        Assert.Equal(Enumerable.Repeat(256.0, ObservedRunFixture.Workers),
            await Query($"sum by (rank) ({Last("dnm_train_steps_total{job=\"dnm\", role=\"worker\"}")})"));
        // Each worker counts the samples of its shard: 8 epochs of 512 samples, half each; the rank labels are 0 and 1.
        var samples = $"sum by (rank) ({Last("dnm_train_samples_total{job=\"dnm\", role=\"worker\"}")})";
        Assert.Equal(new[] { 2048.0, 2048.0 }, await Query(samples));
        var ranks = (await prometheus.QueryAsync(samples, end)).GetProperty("result")
            .EnumerateArray().Select(r => r.GetProperty("metric").GetProperty("rank").GetString()).Order(StringComparer.Ordinal);
        Assert.Equal(["0", "1"], ranks);
        // Two joins (membership changes), no retried step, two workers; and every byte a process sent, another received
        // (the workers exchange the statistics' halves with each other, and send the coordinator one slice each).
        Assert.Equal(new[] { 2.0 }, await Query(Last("dnm_cluster_membership_changes_total{role=\"coordinator\"}")));
        Assert.Equal(new[] { 0.0 }, await Query($"sum({Last("dnm_train_retried_steps_total")})"));
        Assert.Equal(new[] { 2.0 }, await Query($"max({Last("dnm_cluster_workers")})"));
        Assert.Equal(await Query($"sum({Last("dnm_allreduce_bytes_total{direction=\"sent\"}")})"),
            await Query($"sum({Last("dnm_allreduce_bytes_total{direction=\"received\"}")})"));
        using var final = JsonDocument.Parse(File.ReadAllText(Path.Combine(run.OutDirectory, "final-metrics.json")));
        Assert.Equal(new[] { final.RootElement.GetProperty("purity").GetDouble() }, await Query(Last("dnm_eval_purity")));
        Assert.Equal(new[] { final.RootElement.GetProperty("qe").GetDouble() }, await Query(Last("dnm_eval_quantization_error")));

        // The console's last step line and the gauges come from one ThroughputMeter: the same numbers.
        var console = Regex.Match(run.Processes[0].Out.Split('\n').Last(l => l.Contains("joint epoch 6/6 step 32/32", StringComparison.Ordinal)),
            @"\| (\d+) samples/s \| ETA (\S+)");
        Assert.True(console.Success, run.Processes[0].Out);
        var gauge = Assert.Single(await Query(Last("dnm_train_samples_per_second")));
        Assert.Equal(console.Groups[1].Value, gauge.ToString("0", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("0:00", console.Groups[2].Value);
        Assert.Equal(new[] { 0.0 }, await Query(Last("dnm_train_eta_seconds")));

        // Only the identity labels (plus Prometheus's job and instance): nothing per step or sample.
        var labels = (await prometheus.QueryAsync("dnm_train_samples_total", at)).GetProperty("result")[0].GetProperty("metric");
        Assert.Equal(["__name__", "device", "instance", "job", "rank", "role"], labels.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    /// <summary>The values of an instant query's result: one per series of a vector, or the scalar.</summary>
    private static double[] ScalarsOf(JsonElement data)
    {
        var result = data.GetProperty("result");
        string?[] raw = data.GetProperty("resultType").GetString() switch
        {
            "vector" => result.EnumerateArray().Select(s => s.GetProperty("value")[1].GetString()).ToArray(),
            "scalar" => [result[1].GetString()],
            var other => throw new InvalidOperationException($"unexpected result type {other}"),
        };
        return raw.Select(v => double.Parse(v!, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }
}

/// <summary>The panels of a Grafana dashboard file and the values its template variables take when "All" is selected.</summary>
public sealed partial record Dashboard(IReadOnlyList<DashboardPanel> Panels, IReadOnlyDictionary<string, string> Variables)
{
    /// <summary>
    /// Grafana's $__rate_interval is at least four scrape intervals; over this test's short run, one
    /// minute covers every step, so rates and quantiles have samples to work on.
    /// </summary>
    public const string RateInterval = "1m";

    public static Dashboard Load(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var panels = new List<DashboardPanel>();
        void Collect(JsonElement list)
        {
            foreach (var p in list.EnumerateArray())
            {
                if (p.TryGetProperty("panels", out var nested)) Collect(nested); // a collapsed row keeps its panels inside
                if (p.GetProperty("type").GetString() == "row") continue;
                var queries = p.TryGetProperty("targets", out var targets)
                    ? targets.EnumerateArray().Where(t => t.TryGetProperty("expr", out _)).Select(t => t.GetProperty("expr").GetString()!).ToArray()
                    : [];
                panels.Add(new DashboardPanel(p.GetProperty("title").GetString()!, queries));
            }
        }
        Collect(root.GetProperty("panels"));
        var variables = root.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Where(v => v.GetProperty("type").GetString() == "query")
            .ToDictionary(v => v.GetProperty("name").GetString()!, v => v.TryGetProperty("allValue", out var all) ? all.GetString()! : ".*");
        return new Dashboard(panels, variables);
    }

    /// <summary>Replaces $__rate_interval and the query variables ($job, ${job}); anything left unreplaced fails the query.</summary>
    public string Substitute(string expr)
    {
        var text = expr.Replace("$__rate_interval", RateInterval, StringComparison.Ordinal);
        return VariablePattern().Replace(text, m => Variables.TryGetValue(m.Groups[1].Value + m.Groups[2].Value, out var v) ? v : m.Value);
    }

    [GeneratedRegex(@"\$\{(\w+)\}|\$(\w+)")]
    private static partial Regex VariablePattern();
}

public sealed record DashboardPanel(string Title, IReadOnlyList<string> Queries);
