using System.Text;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

public sealed class Crc32CSpec
{
    // The check value from the CRC catalogue and the iSCSI vectors of RFC 3720 B.4.
    public static TheoryData<byte[], uint> KnownVectors => new()
    {
        { Encoding.ASCII.GetBytes("123456789"), 0xE3069283 },
        { new byte[32], 0x8A9136AA },
        { Enumerable.Repeat((byte)0xFF, 32).ToArray(), 0x62A8AB43 },
        { Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(), 0x46DD794E },
        { Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray(), 0x113FDB5C },
        { [], 0 },
    };

    [Theory]
    [MemberData(nameof(KnownVectors))]
    public void Should_match_known_vectors_on_every_path(byte[] data, uint expected)
    {
        Assert.Equal(expected, Crc32C.Compute(data));
        Assert.Equal(expected, Crc32C.ComputeSoftware(data));
        Assert.Equal(expected, Crc32C.ComputeHardware(data));
    }

    [Fact]
    public void Hardware_and_software_paths_agree_on_every_length_and_alignment()
    {
        var data = new byte[64 * 1024 + 9];
        new Random(7).NextBytes(data);
        // Short tails, and lengths around the 3 × 4 KiB interleaved rounds of the hardware path.
        int[] lengths = [.. Enumerable.Range(0, 40).Select(i => i * 7), 12_287, 12_288, 12_289, 24_576 + 13, 40_000, 64 * 1024];
        for (var start = 0; start < 9; start++)
            foreach (var length in lengths)
                Assert.Equal(Crc32C.ComputeSoftware(data.AsSpan(start, length)), Crc32C.ComputeHardware(data.AsSpan(start, length)));
    }

    [Fact]
    public void Append_over_chunks_equals_compute_over_the_whole()
    {
        var data = new byte[10_000];
        new Random(3).NextBytes(data);
        uint crc = 0;
        foreach (var chunk in new[] { 1, 7, 4096, 13, 0, 5883 })
        {
            crc = Crc32C.Append(crc, data.AsSpan(0, chunk));
            data = data[chunk..];
        }
        Assert.Empty(data);

        var whole = new byte[10_000];
        new Random(3).NextBytes(whole);
        Assert.Equal(Crc32C.Compute(whole), crc);
    }

    [Fact]
    public void A_single_flipped_bit_changes_the_checksum()
    {
        var data = new byte[4096];
        new Random(5).NextBytes(data);
        var before = Crc32C.Compute(data);
        data[1234] ^= 0x10;
        Assert.NotEqual(before, Crc32C.Compute(data));
    }
}
