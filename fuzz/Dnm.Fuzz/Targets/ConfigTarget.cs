using System.Text;
using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Model;

namespace Dnm.Fuzz.Targets;

/// <summary>The config file reader and its validation, and what a valid config implies (map, model layout).</summary>
public sealed class ConfigTarget : IFuzzTarget
{
    public string Name => "config";

    public void Run(byte[] input)
    {
        try
        {
            var config = DnmConfig.FromJson(Encoding.UTF8.GetString(input), "fuzz.json");
            if (config.Problems().Count > 0) return;
            _ = config.Sigma0Resolved;
            _ = ModelLayout.Problem(config, new ImageShape(config.ImageChannels, config.ImageSize, config.ImageSize));
            _ = config.ToJson();
        }
        catch (ConfigException)
        {
        }
    }

    public IEnumerable<(string Name, byte[] Bytes)> Seeds()
    {
        yield return ("defaults.json", Encoding.UTF8.GetBytes(new DnmConfig().ToJson()));
        yield return ("small.json", """{ "map": "8x8", "encoder": "mlp", "hidden": [64, 32], "latent": 10, "batch-size": 32, "sigma0": 2.5 }"""u8.ToArray());
        yield return ("comments.json", """
            {
              // a comment
              "channels": [4, 4, 2], "kernel": 3, "gamma": 0.5, "target": "authors", "som-rule": "minibatch",
            }
            """u8.ToArray());
    }
}
