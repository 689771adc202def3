using Dnm.Core.Model;
using Dnm.Core.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Dnm.Core.Tests.Model;

public class SameConvTranspose2dSpec
{
    [Theory]
    [InlineData(5, 8, 5)]
    [InlineData(10, 1, 5)]
    [InlineData(3, 4, 3)]
    public void Output_and_gradients_equal_torch_conv_transpose2d(int cin, int cout, int k)
    {
        TorchRuntime.EnsureCpuNumerics();
        using var scope = NewDisposeScope();
        using var layer = new SameConvTranspose2d(cin, cout, k);
        var parameters = layer.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(["weight", "bias"], parameters.Keys);
        Assert.Equal(new long[] { cin, cout, k, k }, parameters["weight"].shape);

        var gen = new Generator(5);
        var x = rand(new long[] { 3, cin, 9, 11 }, generator: gen).requires_grad_(true);
        var upstream = rand(new long[] { 3, cout, 9, 11 }, generator: gen);
        var y = layer.forward(x);
        (y * upstream).sum().backward();
        var (gx, gw, gb) = (x.grad!.clone(), parameters["weight"].grad!.clone(), parameters["bias"].grad!.clone());

        // The reference: torch's own transposed convolution on float64 copies of the same tensors.
        var x64 = x.detach().to(float64).requires_grad_(true);
        var w64 = parameters["weight"].detach().to(float64).requires_grad_(true);
        var b64 = parameters["bias"].detach().to(float64).requires_grad_(true);
        var y64 = F.conv_transpose2d(x64, w64, b64, padding: [k / 2, k / 2]);
        (y64 * upstream.to(float64)).sum().backward();

        AssertClose(y64, y, "output");
        AssertClose(x64.grad!, gx, "input gradient");
        AssertClose(w64.grad!, gw, "weight gradient");
        AssertClose(b64.grad!, gb, "bias gradient");
    }

    internal static void AssertClose(Tensor reference, Tensor actual, string what)
    {
        Assert.Equal(reference.shape, actual.shape);
        var err = (actual.to(float64) - reference).abs().max().item<double>() / Math.Max(reference.abs().max().item<double>(), 1e-12);
        Assert.True(err < 1e-5, $"{what}: relative error {err:E2}");
    }
}
