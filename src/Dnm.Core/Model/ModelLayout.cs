using Dnm.Core.Config;
using Dnm.Core.Data;

namespace Dnm.Core.Model;

/// <summary>A parameter's name (as <see cref="DnmModel.ParameterNames"/> has it) and shape.</summary>
public sealed record ParameterShape(string Name, long[] Shape)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// The parameters θ, φ a config builds for images of a shape, computed without building anything: what
/// <see cref="Autoencoder.Create"/> would allocate, so that a hostile config or checkpoint is refused before it is.
/// It mirrors <see cref="ConvAutoencoder"/> and <see cref="MlpAutoencoder"/>; a spec holds the two to the same names and shapes.
/// </summary>
public static class ModelLayout
{
    /// <summary>θ and φ in the order of <see cref="DnmModel.Parameters"/>. The config must be valid (<see cref="DnmConfig.Problems"/>).</summary>
    public static IReadOnlyList<ParameterShape> Parameters(DnmConfig config, ImageShape shape) => config.Encoder switch
    {
        EncoderKind.Conv => Conv(config, shape),
        EncoderKind.Mlp => Mlp(config, shape),
        _ => throw new ConfigException(KebabEnum.Problem<EncoderKind>("encoder", config.Encoder.ToString())),
    };

    /// <summary>The shape of the prototypes W: (R·C, latent).</summary>
    public static long[] Prototypes(DnmConfig config) => [(long)config.MapRows * config.MapCols, config.Latent];

    /// <summary>
    /// Why the model <paramref name="config"/> describes for <paramref name="shape"/> images cannot be built, or null: more
    /// parameters than <see cref="DnmConfig.Limits.ModelParameters"/>.
    /// </summary>
    public static string? Problem(DnmConfig config, ImageShape shape)
    {
        var count = Parameters(config, shape).Sum(p => p.Elements);
        if (count <= DnmConfig.Limits.ModelParameters) return null;
        var keys = config.Encoder == EncoderKind.Conv ? "channels, latent or image-size" : "hidden, latent or image-size";
        return $"the {KebabEnum.Name(config.Encoder)} autoencoder for {shape} images has {count} parameters, more than the limit of " +
               $"{DnmConfig.Limits.ModelParameters}: lower {keys}";
    }

    /// <summary>A shape within the limits: 1 or 3 channels, sides in [1, <see cref="DnmConfig.Limits.ImageSide"/>].</summary>
    public static string? ShapeProblem(ImageShape? shape) =>
        shape is { Channels: 1 or 3, Height: > 0 and <= DnmConfig.Limits.ImageSide, Width: > 0 and <= DnmConfig.Limits.ImageSide }
            ? null
            : $"images of {shape?.ToString() ?? "no shape"} (channels x height x width) are not 1 or 3 channels of 1 to {DnmConfig.Limits.ImageSide} pixels a side";

    // Sizes are longs: with the config's limits no product overflows (the widest is 4096 · 4096² · 65536 < 2^63).
    private static List<ParameterShape> Conv(DnmConfig config, ImageShape shape)
    {
        long k = config.Kernel;
        var channels = config.Channels;
        var list = new List<ParameterShape>();
        long cin = shape.Channels;
        for (var i = 0; i < channels.Count; i++)
        {
            list.Add(new($"encoderConvs.conv{i + 1}.weight", [channels[i], cin, k, k]));
            list.Add(new($"encoderConvs.conv{i + 1}.bias", [channels[i]]));
            cin = channels[i];
        }
        var flat = (long)channels[^1] * shape.Height * shape.Width;
        list.Add(new("encoderDense.weight", [config.Latent, flat]));
        list.Add(new("encoderDense.bias", [config.Latent]));
        list.Add(new("decoderDense.weight", [flat, config.Latent]));
        list.Add(new("decoderDense.bias", [flat]));
        for (int i = channels.Count - 1, n = 1; i >= 0; i--, n++)
        {
            long cout = i == 0 ? shape.Channels : channels[i - 1];
            // ConvTranspose2d's layout: in × out × k × k.
            list.Add(new($"decoderConvs.deconv{n}.weight", [channels[i], cout, k, k]));
            list.Add(new($"decoderConvs.deconv{n}.bias", [cout]));
        }
        return list;
    }

    private static List<ParameterShape> Mlp(DnmConfig config, ImageShape shape)
    {
        long pixels = (long)shape.Channels * shape.Height * shape.Width;
        var hidden = config.Hidden.Select(w => (long)w).ToArray();
        var list = new List<ParameterShape>();
        Dense(list, "encoder", [pixels, .. hidden, config.Latent]);
        Dense(list, "decoder", [config.Latent, .. hidden.Reverse(), pixels]);
        return list;
    }

    private static void Dense(List<ParameterShape> list, string stack, long[] widths)
    {
        for (var i = 1; i < widths.Length; i++)
        {
            list.Add(new($"{stack}.dense{i}.weight", [widths[i], widths[i - 1]]));
            list.Add(new($"{stack}.dense{i}.bias", [widths[i]]));
        }
    }
}
