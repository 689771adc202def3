using Dnm.Core.Model;
using Dnm.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Dnm.Core.Tests.Model;

/// <summary>The model's own convolution kernels against torch's conv2d / conv_transpose2d in float64.</summary>
public class SameConvolutionSpec
{
    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        // cin, cout, k, h, w: the paper's layers on MNIST, odd channel counts, narrow and wide rows.
        { 1, 10, 5, 28, 28 }, { 10, 8, 5, 28, 28 }, { 8, 5, 5, 28, 28 }, { 10, 1, 5, 28, 28 },
        { 3, 6, 3, 9, 11 }, { 2, 7, 5, 20, 37 }, { 4, 4, 1, 5, 5 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Conv_output_and_gradients_equal_torch_conv2d(int cin, int cout, int k, int h, int w)
    {
        TorchRuntime.EnsureCpuNumerics();
        using var scope = NewDisposeScope();
        using var layer = new SameConv2d(cin, cout, k);
        var p = Parameters(layer);
        Assert.Equal(["weight", "bias"], p.Keys);
        Assert.Equal(new long[] { cout, cin, k, k }, p["weight"].shape);
        CheckAgainstTorch(layer, p, cin, cout, h, w,
            (x, wt, b) => F.conv2d(x, wt, b, padding: [k / 2, k / 2]));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Transposed_conv_output_and_gradients_equal_torch_conv_transpose2d(int cin, int cout, int k, int h, int w)
    {
        TorchRuntime.EnsureCpuNumerics();
        using var scope = NewDisposeScope();
        using var layer = new SameConvTranspose2d(cin, cout, k);
        var p = Parameters(layer);
        Assert.Equal(["weight", "bias"], p.Keys);
        Assert.Equal(new long[] { cin, cout, k, k }, p["weight"].shape);
        CheckAgainstTorch(layer, p, cin, cout, h, w,
            (x, wt, b) => F.conv_transpose2d(x, wt, b, padding: [k / 2, k / 2]));
    }

    [Fact]
    public void Input_that_needs_no_gradient_gets_none_and_the_weights_still_do()
    {
        using var scope = NewDisposeScope();
        using var layer = new SameConv2d(1, 3, 5);
        var x = rand(2, 1, 28, 28);
        layer.forward(x).sum().backward();
        Assert.Null(x.grad);
        Assert.NotNull(Parameters(layer)["weight"].grad);
    }

    private static Dictionary<string, TorchSharp.Modules.Parameter> Parameters(nn.Module layer) =>
        layer.named_parameters().ToDictionary(p => p.name, p => p.parameter);

    private static void CheckAgainstTorch(nn.Module<Tensor, Tensor> layer, Dictionary<string, TorchSharp.Modules.Parameter> p,
        int cin, int cout, int h, int w, Func<Tensor, Tensor, Tensor, Tensor> reference)
    {
        var gen = new Generator(5);
        var x = (rand(new long[] { 3, cin, h, w }, generator: gen) - 0.3).requires_grad_(true);
        var upstream = rand(new long[] { 3, cout, h, w }, generator: gen) - 0.5;
        var y = layer.forward(x);
        (y * upstream).sum().backward();

        var x64 = x.detach().to(float64).requires_grad_(true);
        var w64 = p["weight"].detach().to(float64).requires_grad_(true);
        var b64 = p["bias"].detach().to(float64).requires_grad_(true);
        var y64 = reference(x64, w64, b64);
        (y64 * upstream.to(float64)).sum().backward();

        AssertClose(y64, y, "output");
        AssertClose(x64.grad!, x.grad!, "input gradient");
        AssertClose(w64.grad!, p["weight"].grad!, "weight gradient");
        AssertClose(b64.grad!, p["bias"].grad!, "bias gradient");
    }

    internal static void AssertClose(Tensor reference, Tensor actual, string what)
    {
        Assert.Equal(reference.shape, actual.shape);
        var err = (actual.to(float64) - reference).abs().max().item<double>() / Math.Max(reference.abs().max().item<double>(), 1e-12);
        Assert.True(err < 1e-5, $"{what}: relative error {err:E2}");
    }
}
