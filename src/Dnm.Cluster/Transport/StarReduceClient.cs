using System.Net;
using System.Runtime.CompilerServices;

namespace Dnm.Cluster.Transport;

/// <summary>
/// Worker side of the star all-reduce: sends the local vector to the coordinator's
/// <see cref="StarReducer"/> and receives what it broadcasts. Owns its connection.
/// </summary>
public sealed class StarReduceClient : IAllReducer, IDisposable
{
    public StarReduceClient(DataPlaneConnection coordinator) => Connection = coordinator;

    /// <summary>Connects to the coordinator's data-plane endpoint (as negotiated over Akka) as <paramref name="rank"/>.</summary>
    public static async Task<StarReduceClient> ConnectAsync(
        EndPoint coordinator, Guid runId, int rank, DataPlaneOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        var connection = await DataPlaneConnection.ConnectAsync(coordinator, runId, rank, options, cancellationToken).ConfigureAwait(false);
        return new StarReduceClient(connection);
    }

    public DataPlaneConnection Connection { get; }

    public int Rank => Connection.LocalRank;

    /// <inheritdoc />
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask AllReduceAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default)
    {
        await Connection.SendAsync(kind, step, data, cancellationToken).ConfigureAwait(false);
        // Not via ReceiveBroadcastAsync: one async state machine fewer per step.
        var header = await Connection.ReceiveAsync(data, cancellationToken).ConfigureAwait(false);
        header.Expect(step, kind, Connection.Peer);
    }

    /// <summary>Sends this worker's vector for <paramref name="step"/>.</summary>
    public ValueTask ContributeAsync(long step, FrameKind kind, ReadOnlyMemory<float> local, CancellationToken cancellationToken = default)
        => Connection.SendAsync(kind, step, local, cancellationToken);

    /// <summary>Sends this worker's vector with the CRC-32C the caller already computed for it (a slice that also goes to a partner).</summary>
    public ValueTask ContributeAsync(long step, FrameKind kind, ReadOnlyMemory<float> local, uint checksum, CancellationToken cancellationToken = default)
        => Connection.SendAsync(kind, step, local, checksum, cancellationToken);

    /// <summary>
    /// Sends this worker's vector for <paramref name="step"/> and returns once it is sent, on the calling thread where the send cannot
    /// wait for the coordinator (<see cref="DataPlaneConnection.TrySendNow"/>), for a caller whose thread waits for it anyway.
    /// </summary>
    public void Contribute(long step, FrameKind kind, ReadOnlyMemory<float> local)
    {
        // One checksum whichever way the frame goes (the star's statistics over TCP are 13 MB for the fully connected model).
        var checksum = Crc32C.Compute(System.Runtime.InteropServices.MemoryMarshal.AsBytes(local.Span));
        if (Connection.TrySendNow(kind, step, local, checksum)) return;
        Connection.SendAsync(kind, step, local, checksum, CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// Receives the coordinator's broadcast for <paramref name="step"/> on the calling thread, which waits for it anyway: the kernel
    /// wakes that thread when the frame arrives, with no thread-pool hop (<see cref="DataPlaneConnection.ReceiveAsync(Memory{float}, bool, CancellationToken)"/>).
    /// </summary>
    public void ReceiveBroadcast(long step, FrameKind kind, Memory<float> destination)
    {
        var receiving = Connection.ReceiveAsync(destination, blocking: true, CancellationToken.None);
        var header = receiving.IsCompletedSuccessfully ? receiving.Result : receiving.AsTask().GetAwaiter().GetResult();
        header.Expect(step, kind, Connection.Peer);
    }

    /// <summary>Receives the coordinator's broadcast for <paramref name="step"/> (the sum, or e.g. new parameters).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReceiveBroadcastAsync(long step, FrameKind kind, Memory<float> destination, CancellationToken cancellationToken = default)
    {
        var header = await Connection.ReceiveAsync(destination, cancellationToken).ConfigureAwait(false);
        header.Expect(step, kind, Connection.Peer);
    }

    public void Dispose() => Connection.Dispose();
}
