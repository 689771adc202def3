using Dnm.Core.Config;
using Dnm.Core.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Dnm.Core.Model;

/// <summary>
/// The autoencoder of a Deep Neural Map: an encoder E_θ from images to z and a decoder D_φ back. Encode and
/// Decode stay apart because the SOM works on z alone. <see cref="Create"/> builds the one the config names.
/// </summary>
public abstract class Autoencoder : Module<Tensor, Tensor>
{
    private readonly bool sigmoidLatent;

    protected Autoencoder(string name, ImageShape shape, DnmConfig config) : base(name)
    {
        Shape = shape;
        sigmoidLatent = config.LatentActivation == LatentActivation.Sigmoid;
    }

    /// <summary>The autoencoder that <see cref="DnmConfig.Encoder"/> names, for images of <paramref name="shape"/>.</summary>
    public static Autoencoder Create(ImageShape shape, DnmConfig config) => config.Encoder switch
    {
        EncoderKind.Conv => new ConvAutoencoder(shape, config),
        EncoderKind.Mlp => new MlpAutoencoder(shape, config),
        _ => throw new ConfigException(KebabEnum.Problem<EncoderKind>("encoder", config.Encoder.ToString())),
    };

    public ImageShape Shape { get; }

    /// <summary>
    /// Bytes per sample of the largest buffer libtorch makes in a training step on the CPU (the engine sizes its
    /// batch shards so that this buffer stays below glibc's per-thread heap).
    /// </summary>
    public abstract long StepBufferBytesPerSample { get; }

    /// <summary>The encoder's parameters θ (the L2 penalty applies to these).</summary>
    public abstract IEnumerable<Parameter> EncoderParameters();

    /// <summary>Images (N, C, H, W) to z (N, latent).</summary>
    public Tensor Encode(Tensor x)
    {
        var z = EncodeLinear(x);
        return sigmoidLatent ? z.sigmoid() : z;
    }

    /// <summary>The encoder up to its last linear layer (before the latent activation).</summary>
    protected abstract Tensor EncodeLinear(Tensor x);

    /// <summary>z (N, latent) to images (N, C, H, W) in [0, 1].</summary>
    public abstract Tensor Decode(Tensor z);

    public override Tensor forward(Tensor x) => Decode(Encode(x));
}
