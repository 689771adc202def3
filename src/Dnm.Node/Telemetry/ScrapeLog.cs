using System.Diagnostics;

namespace Dnm.Node.Telemetry;

/// <summary>
/// Numbers scrapes as they begin, so a wait can insist on one that began (collected its numbers) after
/// the wait did, and measures the time between completed scrapes.
/// </summary>
internal sealed class ScrapeLog
{
    private const int Remembered = 8;
    private readonly object gate = new(); // an object, not a Lock: Monitor.Wait and PulseAll need one
    private readonly Queue<TimeSpan> intervals = new();
    private long begun;
    private long newestCompleted;
    private long completed;
    private long lastCompletion;

    public long Count
    {
        get { lock (gate) return completed; }
    }

    public long Begin()
    {
        lock (gate) return ++begun;
    }

    public void Completed(long ticket)
    {
        lock (gate)
        {
            var now = Stopwatch.GetTimestamp();
            if (completed > 0)
            {
                intervals.Enqueue(Stopwatch.GetElapsedTime(lastCompletion, now));
                if (intervals.Count > Remembered) intervals.Dequeue();
            }
            lastCompletion = now;
            completed++;
            newestCompleted = Math.Max(newestCompleted, ticket);
            Monitor.PulseAll(gate);
        }
    }

    public bool AwaitNext(TimeSpan limit, CancellationToken cancel)
    {
        lock (gate)
        {
            if (completed == 0) return false;
            var after = begun;
            // The longest recent interval: a scrape delayed by a busy CPU makes the next one look early.
            // Never less than 2 s, so a fast scraper's jitter cannot end the wait before its next scrape.
            var wait = intervals.Count == 0 ? limit : TimeSpan.FromTicks(Math.Clamp(2 * intervals.Max().Ticks, TimeSpan.FromSeconds(2).Ticks, limit.Ticks));
            var started = Stopwatch.GetTimestamp();
            while (newestCompleted <= after && !cancel.IsCancellationRequested)
            {
                var left = wait - Stopwatch.GetElapsedTime(started);
                if (left <= TimeSpan.Zero) return false;
                // Woken by a completed scrape; the short slice notices cancellation without a registration.
                Monitor.Wait(gate, left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100));
            }
            return newestCompleted > after;
        }
    }
}
