using static TorchSharp.torch;

namespace Dnm.Core.Tests;

public class SmokeSpec
{
    [Fact]
    public void Torch_native_library_loads_and_convolves()
    {
        using var x = ones(2, 1, 8, 8);
        // Its initial weights come from torch's global generator: drawn in turn with the seeded model builds of other specs.
        using var conv = Dnm.Core.Model.DnmModel.Drawing(() => nn.Conv2d(1, 3, 3, padding: 1));
        using var y = conv.forward(x);
        Assert.Equal(new long[] { 2, 3, 8, 8 }, y.shape);
    }
}
