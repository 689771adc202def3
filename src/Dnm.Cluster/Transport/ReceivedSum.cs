using Dnm.Core.Training;

namespace Dnm.Cluster.Transport;

/// <summary>
/// A received payload added to a local vector of the same length, into <see cref="Destination"/> (which may be
/// <see cref="Local"/>): destination[i] = received[i] + local[i] when <see cref="ReceivedIsLeft"/>, else local[i] + received[i],
/// <see cref="FixedOrderSum"/>'s operand order, so the bits are those of receiving and then adding
/// (<see cref="DataPlaneConnection.ReceiveSumAsync"/>).
/// </summary>
public readonly record struct ReceivedSum(ReadOnlyMemory<float> Local, Memory<float> Destination, bool ReceivedIsLeft)
{
    /// <summary>Adds <paramref name="received"/>, the payload's elements from <paramref name="offset"/> on, to theirs of <see cref="Local"/>.</summary>
    public void Add(ReadOnlySpan<float> received, int offset)
    {
        var local = Local.Span.Slice(offset, received.Length);
        var destination = Destination.Span.Slice(offset, received.Length);
        if (ReceivedIsLeft) FixedOrderSum.Add(destination, received, local);
        else FixedOrderSum.Add(destination, local, received);
    }
}
