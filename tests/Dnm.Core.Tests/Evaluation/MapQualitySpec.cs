using System.Text.Json;
using Dnm.Core.Evaluation;

namespace Dnm.Core.Tests.Evaluation;

public class MapQualitySpec
{
    [Fact]
    public void Should_serialize_with_snake_case_names_and_null_for_missing_label_metrics()
    {
        var json = JsonSerializer.Serialize(new MapQuality(Purity: null, Nmi: null, Qe: 0.5, Te: 0.25, ReconMse: 0.125));

        Assert.Equal("""{"purity":null,"nmi":null,"qe":0.5,"te":0.25,"recon_mse":0.125,"accuracy":null}""", json);
    }

    [Fact]
    public void Should_round_trip_through_json()
    {
        var quality = new MapQuality(0.968, 0.699, 1.5, 0.02, 0.011);

        var back = JsonSerializer.Deserialize<MapQuality>(JsonSerializer.Serialize(quality));

        Assert.Equal(quality, back);
    }
}
