namespace Dnm.Core.Training;

/// <summary>
/// Samples per second and the time left in a phase, measured over a sliding window of recent steps.
/// It is the one place these numbers are computed, so the console display and the metrics exporter
/// agree. Times are passed in (not read from a clock), which keeps it deterministic under test.
/// </summary>
public sealed class ThroughputMeter
{
    private readonly TimeSpan window;
    private readonly Queue<Mark> marks = new();
    private long samples;
    private Mark newest;

    private readonly record struct Mark(TimeSpan At, long Samples, long Position);

    /// <param name="window">How far back the moving average looks. Long enough to smooth out
    /// evaluation and checkpoint pauses, short enough to follow a change of speed.</param>
    public ThroughputMeter(TimeSpan? window = null)
    {
        this.window = window ?? TimeSpan.FromSeconds(20);
        if (this.window <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(window), "the window must be positive");
    }

    /// <summary>Steps in the current phase; 0 when unknown.</summary>
    public long TotalSteps { get; private set; }

    /// <summary>The last recorded position (steps done) in the current phase.</summary>
    public long Position { get; private set; }

    /// <summary>
    /// Starts a phase of <paramref name="totalSteps"/> steps. The previous phase's speed says nothing
    /// about this one (a SOM iteration is far cheaper than a training step), so the window is emptied.
    /// </summary>
    public void Start(long totalSteps)
    {
        marks.Clear();
        samples = 0;
        newest = default;
        Position = 0;
        TotalSteps = Math.Max(0, totalSteps);
    }

    /// <summary>
    /// Records that at <paramref name="at"/> (any monotonic clock) the phase reached step
    /// <paramref name="position"/>, having processed <paramref name="newSamples"/> samples since the last record.
    /// The first record of a phase only anchors the window: a rate needs two points in time.
    /// </summary>
    public void Record(TimeSpan at, long newSamples, long position)
    {
        samples += newSamples;
        Position = position;
        newest = new Mark(at, samples, position);
        marks.Enqueue(newest);
        // Keep at least two marks, so that a phase slower than the window still has a rate.
        while (marks.Count > 2 && at - marks.Peek().At > window) marks.Dequeue();
    }

    /// <summary>Samples per second over the window; null until there are two records apart in time.</summary>
    public double? SamplesPerSecond => Rate(m => m.Samples);

    /// <summary>Steps per second over the window; null until there are two records apart in time.</summary>
    public double? StepsPerSecond => Rate(m => m.Position);

    /// <summary>Estimated time to the end of the phase at the current speed; null when unknown.</summary>
    public TimeSpan? Remaining
    {
        get
        {
            if (TotalSteps <= 0) return null;
            if (Position >= TotalSteps) return TimeSpan.Zero;
            return StepsPerSecond is > 0 and var rate ? TimeSpan.FromSeconds((TotalSteps - Position) / rate) : null;
        }
    }

    private double? Rate(Func<Mark, long> amount)
    {
        if (marks.Count < 2) return null;
        var first = marks.Peek();
        var seconds = (newest.At - first.At).TotalSeconds;
        return seconds > 0 ? (amount(newest) - amount(first)) / seconds : null;
    }
}
