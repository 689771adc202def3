using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// The embedded cluster (`dnm train --workers 2`) records into the same "Dnm" instruments and activity source as
/// the single-process trainer: the coordinator's step span and the workers' phase spans share one trace, and the
/// workers' metrics carry their ranks.
/// </summary>
public sealed class ClusterTelemetrySpec
{
    [Fact]
    public async Task Workers_phase_spans_should_join_the_trace_of_the_coordinators_step_span()
    {
        using var dir = new TempDir();
        var config = TinyRun.Config(TinyRun.WriteDataset(dir.Path), dir.Sub("run"));
        using var source = new ActivitySource(StepTracer.SourceName);
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            // Only this spec's source: other specs of the assembly may trace at the same time.
            ShouldListenTo = s => ReferenceEquals(s, source),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        using var recorded = new MetricsRecorder();
        using var coordinator = new DnmMetrics(new TelemetryIdentity(ClusterTelemetry.CoordinatorRole, 0, "cpu"), scope: recorded);
        var workerMetrics = new ConcurrentBag<DnmMetrics>();
        var telemetry = new ClusterTelemetry(coordinator, id =>
        {
            var m = new DnmMetrics(id, scope: recorded);
            workerMetrics.Add(m);
            return m;
        }, source);

        // As `dnm train --workers` wires it: the coordinator's steps, evaluations and checkpoints reach its metrics
        // through the observer; the workers (which count the step samples) and the membership through the telemetry.
        var observer = new MetricsObserver(coordinator, new ProgressTracker(config, TimeProvider.System), countStepSamples: false);
        await ClusterTraining.RunEmbeddedAsync(config, 2, observer, CancellationToken.None, telemetry: telemetry);
        foreach (var m in workerMetrics) m.Dispose();

        var all = spans.ToArray();
        string? Tag(Activity a, string key) => a.GetTagItem(key)?.ToString();
        var coordinatorSteps = all.Where(a => a.OperationName == "dnm.step" && Tag(a, "dnm.role") == "coordinator").ToArray();
        var workerSteps = all.Where(a => a.OperationName == "dnm.step" && Tag(a, "dnm.role") == "worker").ToArray();
        // 2 pre-training and 3 joint epochs of 6 steps, each spanned once by the coordinator and once per worker.
        Assert.Equal(30, coordinatorSteps.Length);
        Assert.Equal(60, workerSteps.Length);
        foreach (var step in workerSteps)
        {
            // A worker's step span is the child of the coordinator's span of the same step, in the same trace.
            var parent = Assert.Single(coordinatorSteps, c => c.SpanId == step.ParentSpanId);
            Assert.Equal(parent.TraceId, step.TraceId);
            Assert.Equal(Tag(parent, "dnm.step"), Tag(step, "dnm.step"));
        }
        var gradientReduces = all.Where(a => a.OperationName == "dnm.gradient_reduce").ToArray();
        Assert.Equal(60, gradientReduces.Length);
        var jointSoftCounts = all.Where(a => a.OperationName == "dnm.soft_count_reduce").ToArray();
        Assert.Equal(36, jointSoftCounts.Length); // joint steps only
        foreach (var phase in gradientReduces.Concat(jointSoftCounts).Concat(all.Where(a => a.OperationName is "dnm.encode" or "dnm.backward")))
        {
            var step = Assert.Single(workerSteps, w => w.SpanId == phase.ParentSpanId);
            Assert.Contains(coordinatorSteps, c => c.TraceId == phase.TraceId && c.SpanId == step.ParentSpanId);
        }
        // The replica's checkpoint and evaluation spans name the same run as every step span.
        var runId = Tag(coordinatorSteps[0], "dnm.run_id");
        Assert.All(workerSteps, s => Assert.Equal(runId, Tag(s, "dnm.run_id")));
        Assert.Contains(all, a => a.OperationName == "dnm.checkpoint");
        Assert.Contains(all, a => a.OperationName == "dnm.evaluate");
        Assert.All(all.Where(a => a.OperationName is "dnm.checkpoint" or "dnm.evaluate"), a => Assert.Equal(runId, Tag(a, "dnm.run_id")));

        // Metrics: the workers count the samples they process and the steps they take, under their ranks.
        Assert.Equal(30 * 12 / 2, recorded.Sum("dnm_train_samples_total", role: "worker", rank: "0"));
        Assert.Equal(30 * 12 / 2, recorded.Sum("dnm_train_samples_total", role: "worker", rank: "1"));
        Assert.Equal(30, recorded.Sum("dnm_train_steps_total", role: "worker", rank: "1"));
        Assert.Equal(30, recorded.Sum("dnm_train_steps_total", role: "coordinator", rank: "0"));
        // SOM pre-training runs on the coordinator's replica, and its samples are counted there.
        Assert.True(recorded.Sum("dnm_train_samples_total", role: "coordinator", rank: "0") > 0, "the coordinator counted no SOM pre-training samples");
        // Both joins are membership changes; nothing was retried.
        Assert.Equal(2, recorded.Sum("dnm_cluster_membership_changes_total", role: "coordinator", rank: "0"));
        Assert.Equal(0, recorded.Sum("dnm_train_retried_steps_total", role: "coordinator", rank: "0"));
        Assert.Equal(2, recorded.Last("dnm_cluster_workers", role: "coordinator", rank: "0"));
        Assert.Equal(2, recorded.Last("dnm_cluster_workers", role: "worker", rank: "1"));
        // Every byte one node sent, another received: the sums over all of them agree, byte for byte (the workers' bytes
        // include those they exchange with each other, which the two-worker world sums its statistics by).
        double Bytes(string direction) => new[] { ("coordinator", "0"), ("worker", "0"), ("worker", "1") }
            .Sum(n => recorded.Sum("dnm_allreduce_bytes_total", role: n.Item1, rank: n.Item2, direction: direction));
        Assert.True(recorded.Sum("dnm_allreduce_bytes_total", role: "worker", rank: "0", direction: "sent") > 0, "worker 0 recorded no data-plane bytes sent");
        Assert.Equal(Bytes("sent"), Bytes("received"));
        Assert.Equal(30, recorded.Count("dnm_train_phase_duration_seconds", role: "worker", rank: "0", phase: "gradient_reduce"));
        // Every step records every phase (zero where it did not run), as the Trainer's do.
        Assert.Equal(30, recorded.Count("dnm_train_phase_duration_seconds", role: "worker", rank: "1", phase: "som_update"));
    }
}
