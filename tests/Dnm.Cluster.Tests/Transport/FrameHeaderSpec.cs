using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

public sealed class FrameHeaderSpec
{
    private static readonly FrameHeader Sample = new(Guid.NewGuid(), 123_456_789_012, 3, FrameKind.SomStats, 240_000, 0xDEADBEEF);

    [Fact]
    public void Should_round_trip_every_field()
    {
        var bytes = new byte[FrameHeader.Size];
        Sample.WriteTo(bytes);
        Assert.Equal(Sample, FrameHeader.ReadFrom(bytes, "peer"));
    }

    [Fact]
    public void Should_name_the_peer_and_field_on_bad_magic()
    {
        var bytes = new byte[FrameHeader.Size];
        Sample.WriteTo(bytes);
        bytes[0] ^= 0xFF;
        var ex = Assert.Throws<DataPlaneException>(() => FrameHeader.ReadFrom(bytes, "rank 3 at 10.0.0.7:4000"));
        Assert.Equal("Magic", ex.Field);
        Assert.Equal("rank 3 at 10.0.0.7:4000", ex.Peer);
        Assert.Contains("rank 3 at 10.0.0.7:4000", ex.Message);
    }

    [Fact]
    public void Should_reject_another_protocol_version()
    {
        var bytes = new byte[FrameHeader.Size];
        Sample.WriteTo(bytes, version: FrameHeader.ProtocolVersion + 1);
        var ex = Assert.Throws<DataPlaneException>(() => FrameHeader.ReadFrom(bytes, "peer"));
        Assert.Equal("Version", ex.Field);
    }

    [Theory]
    [InlineData(8)]   // run id
    [InlineData(24)]  // step
    [InlineData(36)]  // payload length: must never be trusted once corrupt
    [InlineData(40)]  // payload checksum
    public void Should_detect_a_corrupt_header_field(int offset)
    {
        var bytes = new byte[FrameHeader.Size];
        Sample.WriteTo(bytes);
        bytes[offset] ^= 0x01;
        var ex = Assert.Throws<DataPlaneException>(() => FrameHeader.ReadFrom(bytes, "peer"));
        Assert.Equal("HeaderChecksum", ex.Field);
    }
}
