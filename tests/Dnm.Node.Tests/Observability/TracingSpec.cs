using System.Text;
using System.Text.RegularExpressions;

namespace Dnm.Node.Tests.Observability;

/// <summary>OTLP export of the observed run: spans of each step and its phases, metrics, and log lines that lead to them.</summary>
[Collection(ObservedRunCollection.Name)]
public sealed partial class TracingSpec(ObservedRunFixture fixture)
{
    [Fact]
    public async Task Steps_checkpoints_and_evaluations_should_be_exported_as_spans_over_otlp()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        var traces = Text(run, "/v1/traces");
        // Span names and attribute keys travel as UTF-8 strings inside the protobuf.
        foreach (var expected in new[] { "dnm.step", "dnm.encode", "dnm.backward", "dnm.apply", "dnm.som_update",
                     "dnm.checkpoint", "dnm.evaluate", "dnm.run_id", "dnm.world_size", "dnm.training_phase", "joint" })
            Assert.True(traces.Contains(expected, StringComparison.Ordinal), $"no '{expected}' in the exported spans");
    }

    [Fact]
    public async Task Metrics_should_be_exported_over_otlp_under_their_prometheus_names()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        var metrics = Text(run, "/v1/metrics");
        foreach (var expected in new[] { "dnm_train_steps_total", "dnm_train_phase_duration_seconds", "dnm_eval_purity", "dnm_allreduce_bytes_total" })
            Assert.True(metrics.Contains(expected, StringComparison.Ordinal), $"no '{expected}' in the exported metrics");
    }

    [Fact]
    public async Task Step_log_lines_should_carry_the_trace_id_of_an_exported_span()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        var ids = TraceId().Matches(run.Processes[0].Out).Select(m => m.Groups[1].Value).Distinct().ToArray();
        Assert.NotEmpty(ids);
        var spans = run.OtlpPosts.Where(p => p.Path == "/v1/traces").Select(p => p.Body).ToArray();
        // OTLP carries a trace id as its 16 raw bytes.
        Assert.Contains(ids, id => spans.Any(body => body.AsSpan().IndexOf(Convert.FromHexString(id)) >= 0));
    }

    [Fact]
    public async Task Worker_processes_should_export_their_step_spans_in_the_coordinators_traces()
    {
        var run = await fixture.Run;
        run.AssertSucceeded();
        // The coordinator's step lines carry its step spans' trace ids; a worker process (service.instance.id
        // "worker-...") exports spans of the same traces only if the traceparent crossed the process boundary.
        var ids = TraceId().Matches(run.Processes[0].Out).Select(m => Convert.FromHexString(m.Groups[1].Value)).ToArray();
        Assert.NotEmpty(ids);
        var fromWorkers = run.OtlpPosts.Where(p => p.Path == "/v1/traces")
            .Where(p => Encoding.UTF8.GetString(p.Body).Contains("worker-0-", StringComparison.Ordinal)).Select(p => p.Body).ToArray();
        Assert.NotEmpty(fromWorkers);
        Assert.Contains(fromWorkers, body => Encoding.UTF8.GetString(body).Contains("dnm.gradient_reduce", StringComparison.Ordinal));
        Assert.Contains(ids, id => fromWorkers.Any(body => body.AsSpan().IndexOf(id) >= 0));
    }

    private static string Text(ObservedRun run, string path)
    {
        var bodies = run.OtlpPosts.Where(p => p.Path == path).ToArray();
        Assert.True(bodies.Length > 0, $"nothing was posted to {path}; posts: {string.Join(", ", run.OtlpPosts.Select(p => p.Path))}");
        return string.Concat(bodies.Select(b => Encoding.UTF8.GetString(b.Body)));
    }

    [GeneratedRegex(@" \| .* trace=([0-9a-f]{32})$", RegexOptions.Multiline)]
    private static partial Regex TraceId();
}
