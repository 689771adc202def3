namespace Dnm.Cluster.Transport;

/// <summary>
/// Sums one float vector per worker and gives every participant the global sum. The star (coordinator)
/// reducer implements it today; a ring or tree reducer among workers can replace it without touching
/// callers.
/// </summary>
public interface IAllReducer
{
    /// <summary>
    /// On a worker, <paramref name="data"/> holds the local vector on entry and the global sum on return.
    /// On a coordinator that contributes no vector of its own, its entry content is ignored and it receives
    /// the sum. The sum is taken in rank order, so the result is bitwise reproducible whatever the timing.
    /// All participants must call with the same <paramref name="step"/>, <paramref name="kind"/> and length.
    /// </summary>
    ValueTask AllReduceAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default);
}
