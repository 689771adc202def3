using System.Text;
using System.Text.Json;
using Dnm.Core.Explore;
using Dnm.Core.IO;

namespace Dnm.Node.Serving;

/// <summary>
/// `dnm explore --static`: the explorer as files that open from file:// without a server. data.js holds what the server
/// would answer (the map, its layers, the component planes where they fit, and the first page of every node's members),
/// prototypes.png the lattice's images, members/&lt;node&gt;.png each node's first page of thumbnails. Placing a new
/// image needs the model, so the static page says to run `dnm explore` for that.
/// </summary>
public static class ExplorerSite
{
    /// <summary>Component planes are embedded up to this many values (nodes × latent dimensions): 4 MB of numbers or so.</summary>
    public const long MaxEmbeddedComponents = 400_000;

    /// <summary>Writes the site into <paramref name="directory"/>; returns the number of files written.</summary>
    public static int WriteStatic(MapExplorer explorer, string directory, int membersPerNode)
    {
        var placer = explorer.Placer;
        var members = explorer.Members ?? throw new InvalidOperationException("a static explorer needs a placed dataset");
        Directory.CreateDirectory(Path.Combine(directory, "members"));
        var files = 0;
        void Write(string name, byte[] bytes)
        {
            AtomicFileWriter.WriteAllBytes(Path.Combine(directory, name), bytes);
            files++;
        }

        var pages = new Dictionary<string, MembersPage>();
        for (var node = 0; node < placer.Nodes; node++)
        {
            if (members.Count(node) == 0) continue;
            pages[node.ToString(System.Globalization.CultureInfo.InvariantCulture)] = explorer.Page(node, 0, membersPerNode);
            Write($"members/{node}.png", explorer.PageSprite(node, 0, membersPerNode, StaticColumns));
        }
        float[][]? components = (long)placer.Nodes * placer.Dim <= MaxEmbeddedComponents
            ? Enumerable.Range(0, placer.Dim).Select(explorer.Component).ToArray()
            : null;
        var data = new
        {
            map = explorer.Info(),
            layers = explorer.Layers(),
            components,
            members = pages,
            page_size = membersPerNode,
            columns = StaticColumns,
        };
        var json = JsonSerializer.Serialize(data, MapServer.Json);
        // A script, not a .json fetched at run time: browsers refuse fetch() from file:// pages, but load scripts.
        Write("data.js", Encoding.UTF8.GetBytes($"window.DNM_STATIC = {json};\n"));
        Write("prototypes.png", explorer.PrototypeSprite.Value);
        foreach (var asset in ExplorerAssets.Names) Write(asset, ExplorerAssets.Read(asset, staticData: true));
        return files;
    }

    /// <summary>Thumbnails per row of a static member sprite (the page reads it from data.js).</summary>
    private const int StaticColumns = 8;
}
