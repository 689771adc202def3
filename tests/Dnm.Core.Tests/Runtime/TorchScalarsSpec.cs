using Dnm.Core.Runtime;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Runtime;

public sealed class TorchScalarsSpec
{
    [Fact]
    public void Square_should_give_the_bits_of_torchs_square_with_its_scalar_kept_alive()
    {
        using var scope = NewDisposeScope();
        // Values whose squares round (odd mantissas), tiny and huge ones, zero, negatives, and both float widths.
        var values = new[] { 0f, -0f, 1.1f, -3.3333333f, 1e-20f, 1.7e19f, 123456.79f, float.Epsilon, -0.5f, 7f };
        foreach (var x in new[] { tensor(values), tensor(values).to(float64) * 3.000001 })
        {
            var expected = x.square().bytes.ToArray();
            using var squared = TorchScalars.Square(x);
            Assert.Equal(x.dtype, squared.dtype);
            Assert.Equal(expected, squared.bytes.ToArray());
            // And it is x·x: the exponent 2 takes the multiplication path.
            Assert.Equal((x * x).bytes.ToArray(), squared.bytes.ToArray());
        }
    }
}
