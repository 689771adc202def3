using System.Buffers.Binary;

namespace Dnm.Cluster.Transport;

/// <summary>
/// The fixed 48-byte header in front of every data-plane payload (little-endian):
/// <code>
///  0 magic u32 "DNMF" | 4 version u16 | 6 kind u16 (bit 15: payload in shared memory) | 8 run id (16) | 24 step i64 | 32 rank i32
/// 36 payload bytes i32 | 40 payload CRC-32C u32 | 44 header CRC-32C u32 (of bytes 0..43)
/// </code>
/// Magic, version and kind sit at fixed offsets in every version so a mismatch can always be named.
/// The header's own CRC means a corrupt length is caught before anything trusts it. Bit 15 of the kind
/// field (<see cref="SharedMemoryFlag"/>, version 2) says the payload is in the connection's shared-memory
/// segment rather than after the header; <see cref="Kind"/> never includes it.
/// </summary>
/// <param name="RunId">The training run; frames from another run are rejected.</param>
/// <param name="Step">The training step the payload belongs to.</param>
/// <param name="Rank">The sender's rank.</param>
/// <param name="Kind">What the payload is.</param>
/// <param name="PayloadBytes">Length of the payload that follows the header.</param>
/// <param name="Checksum">CRC-32C of the payload (0 for an empty payload).</param>
public readonly record struct FrameHeader(Guid RunId, long Step, int Rank, FrameKind Kind, int PayloadBytes, uint Checksum)
{
    public const int Size = 48;

    /// <summary>"DNMF" read as a little-endian u32.</summary>
    public const uint Magic = 0x464D_4E44;

    /// <summary>2: the handshake may negotiate shared memory (Welcome payload, SharedMemoryReply) and the kind
    /// field's <see cref="SharedMemoryFlag"/>. Version 1 peers are refused at the handshake.</summary>
    public const ushort ProtocolVersion = 2;

    /// <summary>Set in the wire's kind field when the payload travels through shared memory, not after the header.</summary>
    internal const ushort SharedMemoryFlag = 0x8000;

    private const int HeaderChecksumOffset = 44;

    /// <summary>Encodes this header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination) => WriteTo(destination, ProtocolVersion);

    // The version parameter exists so tests can impersonate a peer of another protocol version.
    internal void WriteTo(Span<byte> destination, ushort version) => WriteTo(destination, version, inSharedMemory: false);

    /// <summary>Encodes with the shared-memory flag when <paramref name="inSharedMemory"/>: the payload does not follow.</summary>
    internal void WriteTo(Span<byte> destination, ushort version, bool inSharedMemory)
    {
        if (destination.Length < Size)
            throw new ArgumentException($"A frame header needs {Size} bytes.", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], version);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], (ushort)((ushort)Kind | (inSharedMemory ? SharedMemoryFlag : 0)));
        RunId.TryWriteBytes(destination.Slice(8, 16));
        BinaryPrimitives.WriteInt64LittleEndian(destination[24..], Step);
        BinaryPrimitives.WriteInt32LittleEndian(destination[32..], Rank);
        BinaryPrimitives.WriteInt32LittleEndian(destination[36..], PayloadBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[40..], Checksum);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[HeaderChecksumOffset..],
            Crc32C.Compute(destination[..HeaderChecksumOffset]));
    }

    /// <summary>
    /// Decodes and checks magic, version and the header checksum.
    /// Throws <see cref="DataPlaneException"/> naming <paramref name="peer"/> and the failing field. A
    /// shared-memory flag is left in <see cref="Kind"/> (which is then no known kind); connections use the
    /// overload that separates it.
    /// </summary>
    public static FrameHeader ReadFrom(ReadOnlySpan<byte> source, string peer)
    {
        var header = ReadFrom(source, peer, out var inSharedMemory);
        return inSharedMemory ? header with { Kind = (FrameKind)((ushort)header.Kind | SharedMemoryFlag) } : header;
    }

    /// <summary>Decodes like <see cref="ReadFrom(ReadOnlySpan{byte}, string)"/> and splits the shared-memory flag off the kind.</summary>
    internal static FrameHeader ReadFrom(ReadOnlySpan<byte> source, string peer, out bool inSharedMemory)
    {
        if (source.Length < Size)
            throw new ArgumentException($"A frame header needs {Size} bytes.", nameof(source));
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (magic != Magic)
            throw new DataPlaneException(peer, "Magic",
                $"Frame from {peer} has bad magic 0x{magic:X8} (expected 0x{Magic:X8}): not a Dnm data-plane peer, or the stream is out of sync.");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(source[4..]);
        if (version != ProtocolVersion)
            throw new DataPlaneException(peer, "Version",
                $"Frame from {peer} has protocol version {version}; this node speaks version {ProtocolVersion}.");
        var expected = BinaryPrimitives.ReadUInt32LittleEndian(source[HeaderChecksumOffset..]);
        var actual = Crc32C.Compute(source[..HeaderChecksumOffset]);
        if (expected != actual)
            throw new DataPlaneException(peer, "HeaderChecksum",
                $"Frame header from {peer} is corrupt: CRC-32C 0x{actual:X8}, header says 0x{expected:X8}.");
        var kind = BinaryPrimitives.ReadUInt16LittleEndian(source[6..]);
        inSharedMemory = (kind & SharedMemoryFlag) != 0;
        var header = new FrameHeader(
            RunId: new Guid(source.Slice(8, 16)),
            Step: BinaryPrimitives.ReadInt64LittleEndian(source[24..]),
            Rank: BinaryPrimitives.ReadInt32LittleEndian(source[32..]),
            Kind: (FrameKind)(kind & ~SharedMemoryFlag),
            PayloadBytes: BinaryPrimitives.ReadInt32LittleEndian(source[36..]),
            Checksum: BinaryPrimitives.ReadUInt32LittleEndian(source[40..]));
        if (header.PayloadBytes < 0)
            throw new DataPlaneException(peer, nameof(PayloadBytes), $"Frame from {peer} has negative payload length {header.PayloadBytes}.");
        return header;
    }

    /// <summary>Throws unless this frame is the expected step and kind (a reducer must never mix steps).</summary>
    internal void Expect(long step, FrameKind kind, string peer)
    {
        if (Kind != kind)
            throw new DataPlaneException(peer, nameof(Kind), $"Expected a {kind} frame from {peer} for step {step}, got {Kind} (step {Step}).");
        if (Step != step)
            throw new DataPlaneException(peer, nameof(Step), $"Expected step {step} from {peer} ({kind}), got step {Step}.");
    }
}
