using System.Buffers;

namespace Dnm.Cluster.Transport;

/// <summary>
/// A reusable byte view over pinned float memory. Socket.SendAsync/ReceiveAsync take Memory&lt;byte&gt;,
/// and a Memory&lt;float&gt; cannot be reinterpreted as one without a MemoryManager; allocating a manager per
/// frame would break the allocation-free hot path, so each connection keeps one per direction and
/// points it at the caller's (pinned) buffer for the duration of one frame.
/// </summary>
internal sealed unsafe class PinnedByteWindow : MemoryManager<byte>
{
    private byte* _pointer;
    private int _length;

    /// <summary>Views the first <paramref name="length"/> bytes of <paramref name="pinned"/>; valid while the pin is held.</summary>
    public Memory<byte> Over(in MemoryHandle pinned, int length)
    {
        _pointer = (byte*)pinned.Pointer;
        _length = length;
        return Memory;
    }

    /// <summary>Forgets the pointer so a stale view cannot be used after the pin is released.</summary>
    public void Clear()
    {
        _pointer = null;
        _length = 0;
    }

    public override Span<byte> GetSpan() => new(_pointer, _length);

    // The memory is already pinned by the caller; nothing more to do.
    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing) => Clear();
}
