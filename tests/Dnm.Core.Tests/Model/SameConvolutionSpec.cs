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
        using var layer = DnmModel.Drawing(() => new SameConv2d(cin, cout, k));
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
        using var layer = DnmModel.Drawing(() => new SameConvTranspose2d(cin, cout, k));
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
        using var layer = DnmModel.Drawing(() => new SameConv2d(1, 3, 5));
        var x = rand(new long[] { 2, 1, 28, 28 }, generator: new Generator(3));
        layer.forward(x).sum().backward();
        Assert.Null(x.grad);
        Assert.NotNull(Parameters(layer)["weight"].grad);
    }

    /// <summary>
    /// Both vector widths run on every CPU (16 floats is a software pair of 8 without AVX-512), so
    /// the 8-wide kernels that AVX2 hosts use are checked here too, not only the host's native one.
    /// </summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Both_vector_widths_equal_torch_and_each_other(int cin, int cout, int k, int h, int w)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(11);
        var x = rand(new long[] { 2, cin, h, w }, generator: gen) - 0.3;
        var weight = rand(new long[] { cout, cin, k, k }, generator: gen) - 0.5;
        var bias = rand(new long[] { cout }, generator: gen);
        var dy = rand(new long[] { 2, cout, h, w }, generator: gen) - 0.5;
        var x64 = x.to(float64).requires_grad_(true);
        var w64 = weight.to(float64).requires_grad_(true);
        var b64 = bias.to(float64).requires_grad_(true);
        var y64 = F.conv2d(x64, w64, b64, padding: [k / 2, k / 2]);
        (y64 * dy.to(float64)).sum().backward();

        var outputs = new List<Tensor>();
        foreach (var lanes in new[] { Float256.Lanes, Float512.Lanes })
        {
            var g = new DirectConvolution.Geometry(2, cin, cout, h, w, k) { Lanes = lanes };
            var y = empty_like(dy);
            var dx = empty_like(x);
            var dw = empty_like(weight);
            var db = empty_like(bias);
            DirectConvolution.Forward(g, HostTensor.Floats(x), HostTensor.Floats(weight), HostTensor.Floats(bias), HostTensor.Floats(y));
            DirectConvolution.GradInput(g, HostTensor.Floats(dy), HostTensor.Floats(weight), HostTensor.Floats(dx));
            DirectConvolution.GradWeight(g, HostTensor.Floats(x), HostTensor.Floats(dy), HostTensor.Floats(dw), HostTensor.Floats(db));
            AssertClose(y64, y, $"output at {lanes} lanes");
            AssertClose(x64.grad!, dx, $"input gradient at {lanes} lanes");
            AssertClose(w64.grad!, dw, $"weight gradient at {lanes} lanes");
            AssertClose(b64.grad!, db, $"bias gradient at {lanes} lanes");
            outputs.Add(y);
        }
        // Every output element adds the same products in the same order at either width.
        Assert.True(outputs[0].eq(outputs[1]).all().item<bool>(), "the forward pass differs between 8 and 16 lanes");
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
