using System.Collections.Concurrent;
using System.Diagnostics;
using Dnm.Core.Telemetry;
using Dnm.Core.Tests.Training;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Telemetry;

public sealed class StepTracerSpec : IDisposable
{
    private readonly ActivitySource source = new(StepTracer.SourceName);
    private readonly ActivityListener listener;
    private readonly ConcurrentQueue<Activity> finished = new();

    public StepTracerSpec()
    {
        // Only this spec's source: other specs' sources (same name) stay unobserved.
        listener = new ActivityListener
        {
            ShouldListenTo = s => ReferenceEquals(s, source),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = finished.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
    }

    public void Dispose()
    {
        listener.Dispose();
        source.Dispose();
    }

    [Fact]
    public void A_step_should_be_a_span_with_its_attributes_and_a_child_span_per_phase_run()
    {
        var tracer = new StepTracer(source, "run-1", rank: 2, worldSize: 4);
        using (var step = tracer.Begin(7, "joint"))
        {
            using (step.Phase(StepPhase.Encode)) Thread.Sleep(2);
            using (step.Phase(StepPhase.Backward)) Thread.Sleep(2);
        }

        var span = Assert.Single(finished, a => a.OperationName == "dnm.step");
        Assert.Equal("run-1", span.GetTagItem("dnm.run_id"));
        Assert.Equal(7L, span.GetTagItem("dnm.step"));
        Assert.Equal(2, span.GetTagItem("dnm.rank"));
        Assert.Equal(4, span.GetTagItem("dnm.world_size"));
        Assert.Equal("joint", span.GetTagItem("dnm.training_phase"));
        var children = finished.Where(a => a.ParentSpanId == span.SpanId).Select(a => a.OperationName).ToArray();
        Assert.Equal(["dnm.encode", "dnm.backward"], children);
        Assert.All(finished, a => Assert.Equal(span.TraceId, a.TraceId));
    }

    [Fact]
    public void A_parent_context_should_put_the_step_into_the_callers_trace()
    {
        var coordinator = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        using (new StepTracer(source, "run-1").Begin(1, "joint", coordinator)) { }

        var span = Assert.Single(finished);
        Assert.Equal(coordinator.TraceId, span.TraceId);
        Assert.Equal(coordinator.SpanId, span.ParentSpanId);
    }

    [Fact]
    public void Phases_should_be_timed_even_when_nothing_traces()
    {
        using var step = StepTracer.Untraced().Begin(1, "joint");
        using (step.Phase(StepPhase.Apply)) Thread.Sleep(20);
        using (step.Phase(StepPhase.Apply)) Thread.Sleep(20);

        Assert.Null(step.Context);
        Assert.InRange(step.Timings[StepPhase.Apply], TimeSpan.FromMilliseconds(40), TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.Zero, step.Timings[StepPhase.Encode]);
        Assert.Empty(finished);
    }

    [Fact]
    public void The_trainer_should_report_each_step_with_the_time_of_every_engine_phase_and_trace_it()
    {
        using var dir = new ScratchDirectory();
        using var data = InMemoryDataset.Blobs(48, 1);
        var config = StepEngineSpec.Small with { Map = "3x3", BatchSize = 24, PretrainEpochs = 1, SomIterations = 10, Epochs = 1, Out = dir.Path };
        var reports = new List<StepReport>();
        using (var trainer = new Trainer(config, data, data, CPU, new RunDirectory(dir.Path), new Recorder(reports), new StepTracer(source, "run-1")))
            trainer.Run(CancellationToken.None);

        var steps = reports.Where(r => r.Phase != TrainingPhase.SomPretrain).ToArray();
        Assert.Equal(4, steps.Length); // 1 pre-training + 1 joint epoch of 48/24 steps
        foreach (var r in steps)
        {
            var t = Assert.IsType<StepTimings>(r.Timings);
            Assert.True(t[StepPhase.Encode] > TimeSpan.Zero && t[StepPhase.Backward] > TimeSpan.Zero && t[StepPhase.Apply] > TimeSpan.Zero, r.ToString());
            // Only the joint step moves the prototypes; one process has nothing to reduce.
            Assert.Equal(r.Phase == TrainingPhase.Joint, t[StepPhase.SomUpdate] > TimeSpan.Zero);
            Assert.Equal(TimeSpan.Zero, t.Communication);
        }
        var spans = finished.Where(a => a.OperationName == "dnm.step").ToArray();
        Assert.Equal(steps.Select(r => r.GlobalStep), spans.Select(s => (long)s.GetTagItem("dnm.step")!));
        Assert.Contains(finished, a => a.OperationName == "dnm.checkpoint");
        Assert.Equal(2, finished.Count(a => a.OperationName == "dnm.som_update"));
    }

    private sealed class Recorder(List<StepReport> reports) : ITrainingObserver
    {
        public void OnStep(StepReport report) => reports.Add(report);
    }
}
