using Dnm.Core.Config;
using Dnm.Core.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// A fully connected autoencoder, the one DEC and DPSOM use (784-500-500-2000-10 for MNIST).
/// Encoder E_θ: flatten → dense layers of <see cref="DnmConfig.Hidden"/> widths (ReLU) → dense → z.
/// Decoder D_φ: the mirror image, dense z → reversed widths (ReLU) → C·H·W → sigmoid.
/// </summary>
public sealed class MlpAutoencoder : Autoencoder
{
    private readonly Sequential encoder;
    private readonly Sequential decoder;

    public MlpAutoencoder(ImageShape shape, DnmConfig config) : base(nameof(MlpAutoencoder), shape, config)
    {
        long pixels = shape.Pixels;
        var widths = config.Hidden.Select(w => (long)w).ToArray();
        encoder = Sequential(DenseStack([pixels, .. widths, config.Latent]));
        decoder = Sequential([.. DenseStack([config.Latent, .. widths.Reverse(), pixels]), ("sigmoid", Sigmoid())]);
        StepBufferBytesPerSample = Math.Max(pixels, widths.Max()) * sizeof(float);
        RegisterComponents();
    }

    /// <summary>dense1, relu1, dense2, …, denseN through <paramref name="widths"/> (no activation after the last).</summary>
    private static List<(string, Module<Tensor, Tensor>)> DenseStack(long[] widths)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        for (var i = 1; i < widths.Length; i++)
        {
            if (i > 1) layers.Add(($"relu{i - 1}", ReLU()));
            layers.Add(($"dense{i}", Linear(widths[i - 1], widths[i])));
        }
        return layers;
    }

    /// <summary>The widest layer's activations.</summary>
    public override long StepBufferBytesPerSample { get; }

    public override IEnumerable<Parameter> EncoderParameters() => encoder.parameters();

    protected override Tensor EncodeLinear(Tensor x) => encoder.forward(x.flatten(1));

    public override Tensor Decode(Tensor z) => decoder.forward(z).view(-1, Shape.Channels, Shape.Height, Shape.Width);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            encoder.Dispose();
            decoder.Dispose();
        }
        base.Dispose(disposing);
    }
}
