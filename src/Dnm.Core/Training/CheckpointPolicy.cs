using System.Diagnostics;
using Dnm.Core.Config;

namespace Dnm.Core.Training;

/// <summary>
/// When a run writes a step checkpoint: every checkpoint-every steps (<see cref="RunPlan.AfterStep"/>), at the end of
/// SOM pre-training, and whenever checkpoint-minutes of wall time passed since the last one, but never twice for
/// the same state (<see cref="Checkpoint.FileName(RunState)"/>). So a short epoch does not write one at every epoch end,
/// SOM pre-training does not rewrite one file every few seconds, and a slow run still loses at most a few minutes.
/// </summary>
public sealed class CheckpointPolicy(DnmConfig config)
{
    private readonly TimeSpan interval = config.CheckpointMinutes > 0 ? TimeSpan.FromMinutes(config.CheckpointMinutes) : TimeSpan.MaxValue;
    private readonly Stopwatch sinceLast = Stopwatch.StartNew();
    private string? lastName;

    /// <summary>Whether to write <paramref name="state"/> now; <paramref name="planned"/>: the plan asks for one here.</summary>
    public bool Due(RunState state, bool planned) =>
        (planned || sinceLast.Elapsed >= interval) && Checkpoint.FileName(state) != lastName;

    /// <summary>
    /// A checkpoint of <paramref name="state"/> was written, or its write failed (the next try waits for the next planned
    /// point or interval), or the run resumed from it.
    /// </summary>
    public void Saved(RunState state)
    {
        lastName = Checkpoint.FileName(state);
        sinceLast.Restart();
    }
}
