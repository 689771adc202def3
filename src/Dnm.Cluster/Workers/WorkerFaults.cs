using Dnm.Core.Training;

namespace Dnm.Cluster.Workers;

/// <summary>
/// Faults a worker injects into its own contributions, so that specs can drive the coordinator's fault handling through
/// the real data plane (API only, no flag: <see cref="Hosting.NodeOptions.WorkerFaults"/>; none by default). Steps are
/// the run's global step before the step (<c>StartStep.Step</c>); each fault fires once, at the first attempt of that step
/// this worker takes part in.
/// </summary>
public sealed record WorkerFaults
{
    /// <summary>Sends statistics with a NaN in them at this step (the contribution only: the replica is untouched).</summary>
    public long? NonFiniteAt { get; init; }

    /// <summary>Waits <see cref="Delay"/> before sending its statistics at this step: a straggler.</summary>
    public long? DelayAt { get; init; }

    public TimeSpan Delay { get; init; }

    /// <summary>
    /// Closes its data-plane connections (to the coordinator and to its partners) as its statistics' reduction of this step
    /// begins, as a worker killed mid-step would: the step fails, and the coordinator names this worker.
    /// </summary>
    public long? DisconnectAt { get; init; }
}

/// <summary>Applies a worker's <see cref="WorkerFaults"/> on its torch thread, each once.</summary>
internal sealed class FaultInjector(WorkerFaults faults)
{
    private bool delayed, poisoned, disconnected;

    /// <summary>Whether this worker drops its connections now, as its statistics' reduction of <paramref name="step"/> begins (once).</summary>
    public bool Disconnects(long step, ReducedVector vector)
    {
        if (disconnected || vector != ReducedVector.Statistics || faults.DisconnectAt != step) return false;
        disconnected = true;
        return true;
    }

    /// <summary>The contribution this worker sends for <paramref name="vector"/> of <paramref name="step"/>, after any fault.</summary>
    public ReadOnlyMemory<float> Apply(long step, ReducedVector vector, ReadOnlyMemory<float> contribution)
    {
        if (vector != ReducedVector.Statistics) return contribution;
        if (!delayed && faults.DelayAt == step)
        {
            delayed = true;
            // The replica's own thread, blocked as a slow device or an overloaded host would block it.
            Thread.Sleep(faults.Delay);
        }
        if (!poisoned && faults.NonFiniteAt == step && contribution.Length > 0)
        {
            poisoned = true;
            var copy = contribution.ToArray();
            copy[0] = float.NaN;
            return copy;
        }
        return contribution;
    }
}
