using System.Globalization;
using System.Text.Json;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Core.Export;

/// <summary>The file formats `dnm export` writes.</summary>
public enum ExportFormat
{
    Safetensors,
}

/// <summary>
/// A trained map as a file other tools read: the autoencoder's parameters under the names PyTorch's <c>state_dict()</c>
/// gives the equivalent torch.nn model (scripts/dnm_torch.py defines it; the names are Dnm's own parameter names, e.g.
/// <c>encoderConvs.conv1.weight</c>, <c>encoder.dense1.bias</c>), the SOM prototypes as <c>som.prototypes</c> (nodes ×
/// latent, node j at lattice row j / cols, column j % cols), and in the metadata the run's config (JSON, the keys of
/// config.json, among them the lattice and whether it is toroidal), the image shape and the global step. `dnm train --init-from` reads it back.
/// </summary>
public sealed record ExportedModel(DnmConfig Config, ImageShape Shape, long GlobalStep, IReadOnlyList<NamedArray> Tensors)
{
    public const string PrototypesName = "som.prototypes";
    public const string ConfigKey = "dnm.config";
    public const string ImageShapeKey = "dnm.image-shape";
    public const string GlobalStepKey = "dnm.global-step";
    public const string FormatKey = "dnm.format";
    /// <summary>Bumped when names or layout change, so that a reader can tell.</summary>
    public const string FormatVersion = "1";

    private const string ParameterPrefix = "param/";
    private const string CheckpointPrototypes = "som/w";

    /// <summary>The model of <paramref name="checkpoint"/> (θ, φ and W; no optimizer state, no smoothing targets).</summary>
    public static ExportedModel From(Checkpoint checkpoint)
    {
        var parameters = checkpoint.Tensors.Where(t => t.Name.StartsWith(ParameterPrefix, StringComparison.Ordinal))
            .Select(t => t with { Name = t.Name[ParameterPrefix.Length..] });
        var prototypes = checkpoint.Tensors.FirstOrDefault(t => t.Name == CheckpointPrototypes)
                         ?? throw new CheckpointException($"the checkpoint has no prototypes ('{CheckpointPrototypes}')");
        return new ExportedModel(checkpoint.Config, checkpoint.Shape, checkpoint.State.GlobalStep, [.. parameters, prototypes with { Name = PrototypesName }]);
    }

    /// <summary>The autoencoder's parameters (every tensor but the prototypes).</summary>
    public IEnumerable<NamedArray> Parameters => Tensors.Where(t => t.Name != PrototypesName);

    public NamedArray Prototypes => Tensors.First(t => t.Name == PrototypesName);

    /// <summary>The metadata (safetensors allows strings only).</summary>
    public IReadOnlyDictionary<string, string> Metadata() => new Dictionary<string, string>
    {
        // The key Hugging Face's loaders look for: the tensors are PyTorch's.
        ["format"] = "pt",
        [FormatKey] = FormatVersion,
        [ConfigKey] = Config.ToJson(),
        [ImageShapeKey] = JsonSerializer.Serialize(new { channels = Shape.Channels, height = Shape.Height, width = Shape.Width }),
        [GlobalStepKey] = GlobalStep.ToString(CultureInfo.InvariantCulture),
    };

    public void Write(string path, ExportFormat format)
    {
        switch (format)
        {
            case ExportFormat.Safetensors: SafetensorsFile.Write(path, Tensors, Metadata()); break;
            default: throw new ConfigException(KebabEnum.Problem<ExportFormat>("format", format.ToString()));
        }
    }

    /// <summary>Reads a file `dnm export` wrote; one that lacks Dnm's metadata or prototypes is a <see cref="CheckpointException"/>.</summary>
    public static ExportedModel Read(string path)
    {
        var contents = SafetensorsFile.Read(path);
        var (config, shape, step) = ParseMetadata(path, contents.Metadata);
        if (contents.Find(PrototypesName) is null)
            throw new CheckpointException($"{path} has no '{PrototypesName}' tensor: it was not written by `dnm export`");
        return new ExportedModel(config, shape, step, contents.Tensors);
    }

    /// <summary>The config a file was exported with, read from its header alone.</summary>
    public static DnmConfig ReadConfig(string path) => ParseMetadata(path, SafetensorsFile.ReadMetadata(path)).Config;

    private static (DnmConfig Config, ImageShape Shape, long Step) ParseMetadata(string path, IReadOnlyDictionary<string, string> metadata)
    {
        string Get(string key) => metadata.TryGetValue(key, out var value)
            ? value
            : throw new CheckpointException($"{path} has no '{key}' metadata: it was not written by `dnm export`");
        if (Get(FormatKey) != FormatVersion)
            throw new CheckpointException($"{path} is export format {Get(FormatKey)}; this Dnm reads format {FormatVersion}");
        DnmConfig config;
        try
        {
            config = DnmConfig.FromRecordedJson(Get(ConfigKey), $"{path} ({ConfigKey})");
        }
        catch (ConfigException e)
        {
            throw new CheckpointException(e.Message);
        }
        ImageShape shape;
        try
        {
            using var doc = JsonDocument.Parse(Get(ImageShapeKey));
            var root = doc.RootElement;
            shape = new ImageShape(root.GetProperty("channels").GetInt32(), root.GetProperty("height").GetInt32(), root.GetProperty("width").GetInt32());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{path} has an unreadable '{ImageShapeKey}' ({e.Message})");
        }
        var step = long.TryParse(Get(GlobalStepKey), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 0;
        return (config, shape, step);
    }
}
