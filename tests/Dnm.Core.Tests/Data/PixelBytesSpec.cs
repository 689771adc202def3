using System.Numerics;
using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

public sealed class PixelBytesSpec
{
    [Fact]
    public void Should_give_the_correctly_rounded_quotient_of_every_byte_at_every_position()
    {
        // Lengths around the vector width exercise the vector loop, the scalar tail and both together; the bytes cycle
        // through all 256 values at shifting offsets so that every value lands in every lane.
        int width = Vector<byte>.Count;
        foreach (int length in new[] { 0, 1, width - 1, width, width + 1, 3 * width + 7, 3 * 64 * 64, 256 * 3 + 5 })
        {
            var source = Enumerable.Range(0, length).Select(i => (byte)(i * 7 + length)).ToArray();
            var actual = new float[length];
            PixelBytes.ToUnitFloats(source, actual);
            for (int i = 0; i < length; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(source[i] / 255f), BitConverter.SingleToInt32Bits(actual[i]));
        }
    }

    [Fact]
    public void Should_refuse_a_destination_of_another_length()
    {
        var e = Assert.Throws<ArgumentException>(() => PixelBytes.ToUnitFloats(new byte[12], new float[11]));
        Assert.Contains("11 floats", e.Message);
    }
}
