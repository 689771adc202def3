using Dnm.Core.Config;
using Dnm.Core.Model;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Export;

/// <summary>
/// `dnm train --init-from`: a new run starts from an exported model's autoencoder weights, its prototypes or both
/// (<see cref="DnmConfig.InitParts"/>) instead of the seed's. The file must describe the same model as the run's flags:
/// any difference is a <see cref="ConfigException"/> naming the flags to change.
/// </summary>
public static class WarmStart
{
    private static readonly (string Key, Func<DnmConfig, string> Value, Func<DnmConfig, bool> Applies)[] WeightKeys =
    [
        ("encoder", c => KebabEnum.Name(c.Encoder), _ => true),
        ("channels", c => string.Join(',', c.Channels), c => c.Encoder == EncoderKind.Conv),
        ("kernel", c => c.Kernel.ToString(System.Globalization.CultureInfo.InvariantCulture), c => c.Encoder == EncoderKind.Conv),
        ("hidden", c => string.Join(',', c.Hidden), c => c.Encoder == EncoderKind.Mlp),
        ("latent", c => c.Latent.ToString(System.Globalization.CultureInfo.InvariantCulture), _ => true),
        ("latent-activation", c => KebabEnum.Name(c.LatentActivation), _ => true),
    ];

    private static readonly (string Key, Func<DnmConfig, string> Value, Func<DnmConfig, bool> Applies)[] PrototypeKeys =
    [
        ("latent", c => c.Latent.ToString(System.Globalization.CultureInfo.InvariantCulture), _ => true),
        ("map", c => $"{c.MapRows}x{c.MapCols}", _ => true),
        // The same prototypes on another lattice would start from a map whose neighbours are not its neighbours.
        ("lattice", c => KebabEnum.Name(c.Lattice), _ => true),
        ("toroidal", c => c.Toroidal ? "true" : "false", _ => true),
    ];

    public static bool LoadsWeights(InitParts parts) => parts is InitParts.Weights or InitParts.Both;
    public static bool LoadsPrototypes(InitParts parts) => parts is InitParts.Prototypes or InitParts.Both;

    /// <summary>
    /// Throws a <see cref="ConfigException"/> when the model keys that the loaded parts depend on differ between the run
    /// (<paramref name="run"/>) and the file (<paramref name="exported"/>, from <paramref name="path"/>). Needs no torch.
    /// </summary>
    public static void CheckConfig(DnmConfig run, DnmConfig exported, InitParts parts, string path)
    {
        var keys = (LoadsWeights(parts) ? WeightKeys : []).Concat(LoadsPrototypes(parts) ? PrototypeKeys : []).DistinctBy(k => k.Key);
        var differences = keys.Where(k => k.Applies(exported) || k.Applies(run))
            .Where(k => k.Value(exported) != k.Value(run))
            .Select(k => $"--{k.Key} {k.Value(exported)} (this run: {k.Value(run)})")
            .ToArray();
        if (differences.Length > 0)
            throw new ConfigException(
                $"--init-from {path} holds a different model: it has {string.Join(", ", differences)}; give the run the same flags (--init-parts {KebabEnum.Name(parts)})");
    }

    /// <summary>Copies the chosen parts of <paramref name="exported"/> into <paramref name="model"/>, after checking that they fit.</summary>
    public static void Apply(DnmModel model, DnmConfig run, ExportedModel exported, InitParts parts, string path)
    {
        CheckConfig(run, exported.Config, parts, path);
        var byName = exported.Tensors.ToDictionary(t => t.Name);
        var targets = new List<(NamedArray Source, Tensor Target)>();
        if (LoadsWeights(parts))
        {
            if (exported.Shape != model.Shape)
                throw new ConfigException(
                    $"--init-from {path} was trained on {exported.Shape} images (channels x height x width) but this run's are {model.Shape}: use data of that shape (--dataset; --image-size and --image-channels for folders)");
            var extra = exported.Parameters.Select(t => t.Name).Except(model.ParameterNames).ToArray();
            if (extra.Length > 0)
                throw new ConfigException($"--init-from {path} has tensors this run's model lacks ({string.Join(", ", extra.Take(3))}): it holds a different model");
            for (var i = 0; i < model.Parameters.Count; i++)
                targets.Add((Find(byName, model.ParameterNames[i], path), model.Parameters[i]));
        }
        if (LoadsPrototypes(parts)) targets.Add((Find(byName, ExportedModel.PrototypesName, path), model.Som.Prototypes));

        // Every shape first, so that a misfit changes nothing.
        foreach (var (source, target) in targets)
            if (!source.Shape.SequenceEqual(target.shape))
                throw new ConfigException(
                    $"--init-from {path}: tensor {source.Name} is [{string.Join(",", source.Shape)}] there but this run's model needs [{string.Join(",", target.shape)}]; give the run the model flags of the file's config (its '{ExportedModel.ConfigKey}' metadata)");
        using var _ = no_grad();
        foreach (var (source, target) in targets)
        {
            using var values = tensor(source.Data, source.Shape, dtype: float32, device: target.device);
            target.copy_(values);
        }
    }

    private static NamedArray Find(Dictionary<string, NamedArray> byName, string name, string path) =>
        byName.TryGetValue(name, out var t)
            ? t
            : throw new ConfigException($"--init-from {path} has no tensor '{name}', which this run's model needs: it holds a different model");
}
