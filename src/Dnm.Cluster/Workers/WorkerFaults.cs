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

    /// <summary>
    /// Closes only its connections to its partners of the reduction among the workers, as that reduction of this step begins
    /// (after its flag went to the coordinator): the link between workers breaks while every worker still reaches the coordinator.
    /// </summary>
    public long? PartnersDisconnectAt { get; init; }

    /// <summary>
    /// Stops at this step after its flag went to the coordinator, sending nothing more to its partners or the coordinator until it
    /// leaves the world: a link between workers that hangs without an error.
    /// </summary>
    public long? PartnersStallAt { get; init; }
}

/// <summary>Applies a worker's <see cref="WorkerFaults"/> on its torch thread, each once.</summary>
internal sealed class FaultInjector(WorkerFaults faults)
{
    private bool delayed, poisoned, disconnected, partnersDisconnected, stalled;

    /// <summary>Whether this worker closes its partner connections now, as its reduction among the workers of <paramref name="step"/> begins (once).</summary>
    public bool DisconnectsPartners(long step) => Once(ref partnersDisconnected, faults.PartnersDisconnectAt == step);

    /// <summary>Whether this worker stalls now, in its reduction among the workers of <paramref name="step"/> (once).</summary>
    public bool Stalls(long step) => Once(ref stalled, faults.PartnersStallAt == step);

    /// <summary>Whether this worker drops its connections now, as its statistics' reduction of <paramref name="step"/> begins (once).</summary>
    public bool Disconnects(long step, ReducedVector vector) => Once(ref disconnected, vector == ReducedVector.Statistics && faults.DisconnectAt == step);

    /// <summary>The contribution this worker sends for <paramref name="vector"/> of <paramref name="step"/>, after any fault.</summary>
    public ReadOnlyMemory<float> Apply(long step, ReducedVector vector, ReadOnlyMemory<float> contribution)
    {
        if (vector != ReducedVector.Statistics) return contribution;
        if (Once(ref delayed, faults.DelayAt == step))
        {
            // The replica's own thread, blocked as a slow device or an overloaded host would block it.
            Thread.Sleep(faults.Delay);
        }
        if (Once(ref poisoned, faults.NonFiniteAt == step && contribution.Length > 0))
        {
            var copy = contribution.ToArray();
            copy[0] = float.NaN;
            return copy;
        }
        return contribution;
    }

    /// <summary>True the first time a fault is <paramref name="due"/> (and marks it <paramref name="fired"/>), false after.</summary>
    private static bool Once(ref bool fired, bool due)
    {
        if (fired || !due) return false;
        fired = true;
        return true;
    }
}
