namespace Dnm.Cluster.Transport;

/// <summary>What a data-plane frame carries. The value travels on the wire as a ushort, so never renumber.</summary>
public enum FrameKind : ushort
{
    // Handshake frames (1–15) are reserved for the connection itself; SendAsync refuses them.
    Hello = 1,
    Welcome = 2,
    Reject = 3,
    /// <summary>
    /// The client's answer to a Welcome that offered shared memory (protocol version 2): an empty payload
    /// means it mapped both segments, otherwise the UTF-8 reason it did not and both sides use TCP.
    /// </summary>
    SharedMemoryReply = 4,

    /// <summary>Soft counts f (R·C floats): summed over workers before the loss is computed.</summary>
    SoftCounts = 16,
    /// <summary>Flattened gradients of θ and φ.</summary>
    Gradients = 17,
    /// <summary>SOM statistics S, H and BMU counts.</summary>
    SomStats = 18,
    /// <summary>Flattened model parameters (θ, φ) or prototypes W.</summary>
    Parameters = 19,
    /// <summary>Optimizer or other state sent to a joining worker.</summary>
    State = 20,
    /// <summary>Loss parts, summed for logging.</summary>
    LossParts = 21,
    /// <summary>The smoothed latent targets ẑ (N × D floats), sent to a joining worker after its state.</summary>
    Targets = 22,
    /// <summary>
    /// One float: 1 when the sender's own statistics of the step were finite, 0 when they held NaN or infinity. Sent to
    /// the coordinator before a reduction among the workers (<see cref="RecursiveHalvingReducer"/>), where it sees only
    /// slices of the sum and could not tell whose contribution was at fault otherwise.
    /// </summary>
    Finite = 23,

    // A new kind goes here and extends FrameKinds.IsData.
}

internal static class FrameKinds
{
    public static bool IsHandshake(FrameKind kind) => kind is >= FrameKind.Hello and <= FrameKind.SharedMemoryReply;

    public static bool IsData(FrameKind kind) => kind is >= FrameKind.SoftCounts and <= FrameKind.Finite;
}
