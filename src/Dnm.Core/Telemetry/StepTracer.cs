using System.Diagnostics;

namespace Dnm.Core.Telemetry;

/// <summary>
/// Times the phases of each training step and, where something listens to the "Dnm"
/// <see cref="ActivitySource"/> (the OpenTelemetry SDK when OTLP is configured), records them as spans:
/// one span per step with a child span per phase. Without a listener no Activity is created and only
/// the timings remain, so an untraced run pays for a few timestamps per step.
/// </summary>
public sealed class StepTracer
{
    public const string SourceName = "Dnm";

    private readonly ActivitySource? source;
    private readonly string runId;
    private readonly int rank;
    private readonly int worldSize;

    /// <param name="source">The run's source (named <see cref="SourceName"/>); null to time without tracing.</param>
    /// <param name="runId">Identifies the run in every span; the cluster passes its run id so all workers agree.</param>
    public StepTracer(ActivitySource? source, string runId, int rank = 0, int worldSize = 1)
    {
        if (source is not null && source.Name != SourceName)
            throw new ArgumentException($"the activity source must be named '{SourceName}', not '{source.Name}'", nameof(source));
        this.source = source;
        this.runId = runId;
        this.rank = rank;
        this.worldSize = worldSize;
    }

    /// <summary>Timings only: for runs without telemetry (tests, library use).</summary>
    public static StepTracer Untraced() => new(null, "untraced");

    /// <summary>
    /// Starts the span of step <paramref name="step"/>. <paramref name="parent"/> is the coordinator's
    /// context carried in the step command, so a worker's step spans join the coordinator's trace; without
    /// it the step is a child of <see cref="Activity.Current"/>, or the root of a new trace.
    /// </summary>
    public StepTrace Begin(long step, string trainingPhase, ActivityContext? parent = null)
    {
        var activity = source?.StartActivity("dnm.step", ActivityKind.Internal, parent ?? default(ActivityContext));
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("dnm.run_id", runId);
            activity.SetTag("dnm.step", step);
            activity.SetTag("dnm.rank", rank);
            activity.SetTag("dnm.world_size", worldSize);
            activity.SetTag("dnm.training_phase", trainingPhase);
        }
        return new StepTrace(source, activity);
    }

    /// <summary>A span for work outside the step loop (a checkpoint, an evaluation); null when nothing listens.</summary>
    public Activity? Span(string name, long step)
    {
        var activity = source?.StartActivity(name);
        activity?.SetTag("dnm.run_id", runId);
        activity?.SetTag("dnm.step", step);
        activity?.SetTag("dnm.rank", rank);
        return activity;
    }

    /// <summary>The trace id to print in a log line, when a span is current.</summary>
    public static string? CurrentTraceId() =>
        Activity.Current is { } a ? a.TraceId.ToHexString() : null;
}

/// <summary>One step in flight: its span (if traced) and the time of each phase.</summary>
public sealed class StepTrace : IDisposable
{
    private readonly ActivitySource? source;
    private readonly Activity? activity;

    internal StepTrace(ActivitySource? source, Activity? activity)
    {
        this.source = source;
        this.activity = activity;
    }

    public StepTimings Timings { get; } = new();

    /// <summary>The step's span context, to send to peers so their spans join this trace.</summary>
    public ActivityContext? Context => activity?.Context;

    /// <summary>Times one phase (and traces it as a child span) until the returned scope is disposed.</summary>
    public PhaseScope Phase(StepPhase phase) =>
        new(this, phase, source?.StartActivity("dnm." + StepTimings.Name(phase)), Stopwatch.GetTimestamp());

    internal void End(StepPhase phase, TimeSpan elapsed) => Timings.Add(phase, elapsed);

    public void Dispose() => activity?.Dispose();
}

/// <summary>A phase being timed; a struct so that timing a phase allocates nothing.</summary>
public readonly struct PhaseScope(StepTrace trace, StepPhase phase, Activity? activity, long started) : IDisposable
{
    public void Dispose()
    {
        trace.End(phase, Stopwatch.GetElapsedTime(started));
        activity?.Dispose();
    }
}
