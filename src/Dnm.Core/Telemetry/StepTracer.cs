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
    private readonly string? role;

    /// <param name="source">The run's source (named <see cref="SourceName"/>); null to time without tracing.</param>
    /// <param name="runId">Identifies the run in every span; the cluster passes its run id so all workers agree.</param>
    /// <param name="role">The cluster role (coordinator, worker) as the span tag dnm.role; null in a single process.</param>
    public StepTracer(ActivitySource? source, string runId, int rank = 0, int worldSize = 1, string? role = null)
    {
        if (source is not null && source.Name != SourceName)
            throw new ArgumentException($"the activity source must be named '{SourceName}', not '{source.Name}'", nameof(source));
        this.source = source;
        this.runId = runId;
        this.rank = rank;
        this.worldSize = worldSize;
        this.role = role;
    }

    /// <summary>Timings only: for runs without telemetry (tests, library use).</summary>
    public static StepTracer Untraced() => new(null, "untraced");

    /// <summary>
    /// Starts the span of step <paramref name="step"/>. <paramref name="parent"/> is the coordinator's
    /// context carried in the step command, so a worker's step spans join the coordinator's trace; without
    /// it the step is a child of <see cref="Activity.Current"/>, or the root of a new trace.
    /// With <paramref name="makeCurrent"/> false the span does not become <see cref="Activity.Current"/>: for an
    /// actor, whose step spans several messages and whose thread runs other actors in between.
    /// </summary>
    public StepTrace Begin(long step, string trainingPhase, ActivityContext? parent = null, bool makeCurrent = true)
    {
        var previous = Activity.Current;
        var activity = source?.StartActivity("dnm.step", ActivityKind.Internal, parent ?? default(ActivityContext));
        if (!makeCurrent && activity is not null) Activity.Current = previous;
        if (activity is { IsAllDataRequested: true })
        {
            if (role is not null) activity.SetTag("dnm.role", role);
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
        if (role is not null) activity?.SetTag("dnm.role", role);
        return activity;
    }

    /// <summary>
    /// The W3C traceparent of a span ("00-&lt;trace id&gt;-&lt;span id&gt;-&lt;flags&gt;"), to send in a message so that the
    /// receiver's spans join the sender's trace; null without a span.
    /// </summary>
    public static string? TraceParent(Activity? activity) =>
        activity is { IdFormat: ActivityIdFormat.W3C } ? activity.Id : null;

    /// <summary>The span context a received traceparent names; null if there is none or it does not parse.</summary>
    public static ActivityContext? ParseTraceParent(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, isRemote: true, out var context) ? context : null;

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

    /// <summary>The step's span as a W3C traceparent (see <see cref="StepTracer.TraceParent"/>); null when untraced.</summary>
    public string? TraceParent => StepTracer.TraceParent(activity);

    /// <summary>
    /// Makes the step's span <see cref="Activity.Current"/> until disposed (then restores the previous one), so
    /// that what is logged for the step carries its trace id. Null when untraced.
    /// </summary>
    public IDisposable? Enter() => activity is null ? null : new CurrentScope(activity);

    private sealed class CurrentScope : IDisposable
    {
        private readonly Activity? previous = Activity.Current;

        public CurrentScope(Activity activity) => Activity.Current = activity;

        public void Dispose() => Activity.Current = previous;
    }

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
