using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ArmCrc = System.Runtime.Intrinsics.Arm.Crc32;
using X86Crc = System.Runtime.Intrinsics.X86.Sse42;

namespace Dnm.Cluster.Transport;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of every data-plane frame. Hand-written because System.IO.Hashing
/// gains CRC-32C only in .NET 11 and is not a dependency we want on a partial package mirror. The SSE4.2 / ARMv8 CRC
/// instructions, run as three interleaved chains, checksum far faster than loopback TCP moves bytes, so
/// checksums cost little CPU; the table-driven fallback keeps the protocol identical on any CPU.
/// </summary>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78;

    private const int LaneBytes = 4096;

    // Both written once by the type initialiser, read-only afterwards.
    private static readonly uint[] Table = CreateTable();
    private static readonly uint[] LaneShift = CreateShiftTable();

    /// <summary>The CRC-32C of <paramref name="data"/>; CRC32C("123456789") = 0xE3069283.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>
    /// Extends a finished checksum with more data: Append(Compute(a), b) == Compute(a ++ b).
    /// Lets a receiver checksum each chunk as it arrives instead of re-reading the whole payload.
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
        => IsHardwareAccelerated ? ~UpdateHardware(~crc, data) : ~UpdateSoftware(~crc, data);

    /// <summary>True when the CPU's CRC instruction is used.</summary>
    public static bool IsHardwareAccelerated => X86Crc.X64.IsSupported || ArmCrc.Arm64.IsSupported;

    internal static uint ComputeSoftware(ReadOnlySpan<byte> data) => ~UpdateSoftware(~0u, data);

    internal static uint ComputeHardware(ReadOnlySpan<byte> data) => ~UpdateHardware(~0u, data);

    private static uint UpdateHardware(uint state, ReadOnlySpan<byte> data)
    {
        if (!IsHardwareAccelerated)
            return UpdateSoftware(state, data);

        // The CRC instruction has a latency of ~3 cycles but a throughput of one per cycle, so three
        // independent chains over three lanes run ~3× faster than one chain. The register update is linear,
        // so the lanes combine as state = shift(shift(a, Lane) ^ b, Lane) ^ c (see LaneShift).
        while (data.Length >= 3 * LaneBytes)
        {
            // Bounds are checked by the loop condition above; unchecked reads keep the three chains tight.
            ref var lane = ref MemoryMarshal.GetReference(data);
            ulong a = state, b = 0, c = 0;
            for (var offset = 0; offset < LaneBytes; offset += sizeof(ulong))
            {
                a = Crc64(a, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref lane, offset)));
                b = Crc64(b, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref lane, offset + LaneBytes)));
                c = Crc64(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref lane, offset + 2 * LaneBytes)));
            }
            state = ShiftLane(ShiftLane((uint)a) ^ (uint)b) ^ (uint)c;
            data = data[(3 * LaneBytes)..];
        }

        // Unaligned 8-byte reads are fine on x64 and ARM64.
        var tailWords = MemoryMarshal.Cast<byte, ulong>(data);
        ulong s = state;
        foreach (var w in tailWords)
            s = Crc64(s, w);
        state = (uint)s;
        foreach (var t in data[(tailWords.Length * sizeof(ulong))..])
            state = X86Crc.IsSupported ? X86Crc.Crc32(state, t) : ArmCrc.ComputeCrc32C(state, t);
        return state;
    }

    // IsSupported checks are JIT-time constants: this compiles to the one instruction.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Crc64(ulong state, ulong word)
        => X86Crc.X64.IsSupported ? X86Crc.X64.Crc32(state, word) : ArmCrc.Arm64.ComputeCrc32C((uint)state, word);

    /// <summary>The register after <see cref="LaneBytes"/> zero bytes, starting from <paramref name="state"/>.</summary>
    private static uint ShiftLane(uint state)
    {
        var table = LaneShift;
        return table[(byte)state] ^ table[256 + (byte)(state >> 8)] ^ table[512 + (byte)(state >> 16)] ^ table[768 + (state >> 24)];
    }

    private static uint UpdateSoftware(uint state, ReadOnlySpan<byte> data)
    {
        var table = Table;
        foreach (var b in data)
            state = table[(byte)(state ^ b)] ^ (state >> 8);
        return state;
    }

    private static uint[] CreateTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
                c = (c & 1) != 0 ? (c >> 1) ^ ReflectedPolynomial : c >> 1;
            table[i] = c;
        }
        return table;
    }

    // Shifting a register through n zero bytes is linear in the register, so it is the XOR of the
    // shifts of its set bits: 32 software runs give a 4×256 byte-indexed table.
    private static uint[] CreateShiftTable()
    {
        Span<byte> zeros = stackalloc byte[LaneBytes];
        zeros.Clear();
        Span<uint> bit = stackalloc uint[32];
        for (var i = 0; i < 32; i++)
            bit[i] = UpdateSoftware(1u << i, zeros);
        var table = new uint[4 * 256];
        for (var k = 0; k < 4; k++)
            for (var b = 0; b < 256; b++)
            {
                uint shifted = 0;
                for (var j = 0; j < 8; j++)
                    if ((b & (1 << j)) != 0)
                        shifted ^= bit[8 * k + j];
                table[k * 256 + b] = shifted;
            }
        return table;
    }
}
