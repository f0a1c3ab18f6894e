"""The shipped rule packs in rules/: they load, and each rule fires on realistic items and on no near miss.

Examples are invented headlines and leads written in the style of the real feeds (gov.uk CMA
pages, FTC and DOJ releases, the Commission's press corner, tech news). Each rule has at least
three items it must match and three near misses it must not: the Country Music Association and
other CMAs, the same step by another regulator, AI news with no regulator, background mentions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from watcher.feeds.normalise import normalise_feed
from watcher.feeds.parse import parse_feed
from watcher.match import RuleSet
from watcher.model import Item, Rule
from watcher.rules import load_rules, rule_files

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
FEEDS_DIR = Path(__file__).resolve().parents[1] / "data" / "feeds"
EXPECTED_FILES = {"cma.toml", "deals.toml", "doj.toml", "eu.toml", "ftc.toml"}


def _item(title: str, text: str, key: str = "test-item") -> Item:
    return Item(feed_id="test", item_key=key, title=title, link=None, summary=text, content="", published_at=None)


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules([RULES_DIR])


@pytest.fixture(scope="module")
def ruleset(rules: list[Rule]) -> RuleSet:
    return RuleSet(rules)


def fired(ruleset: RuleSet, title: str, text: str) -> set[str]:
    return {m.rule_id for m in ruleset.match(_item(title, text))}


# (rule_id, title, text, should_match)
CASES: list[tuple[str, str, str, bool]] = [
    # ---- cma-invitation-to-comment ------------------------------------------------------------
    (
        "cma-invitation-to-comment",
        "Microsoft / Mistral AI partnership: invitation to comment",
        "The CMA is inviting comments on the partnership between Microsoft and Mistral AI.",
        True,
    ),
    (
        "cma-invitation-to-comment",
        "CMA invites comment on Amazon's investment in Anthropic",
        "The Competition and Markets Authority is seeking views on whether Amazon's $4 billion "
        "investment in Anthropic has resulted in a relevant merger situation.",
        True,
    ),
    (
        "cma-invitation-to-comment",
        "Northwind / Lumen AI partnership: invitation to comment",
        "The CMA is seeking views on whether Northwind's partnership with Lumen AI has resulted in a "
        "relevant merger situation. Comments should be sent by 5pm on 3 June 2024.",
        True,
    ),
    (
        "cma-invitation-to-comment",
        "Alphabet Inc. / Anthropic partnership merger inquiry",
        "Invitation to comment: the Competition and Markets Authority is considering whether Alphabet's "
        "partnership with Anthropic PBC has resulted in the creation of a relevant merger situation.",
        True,
    ),
    (
        "cma-invitation-to-comment",
        "CMA Awards 2024: Country Music Association partners with Amazon Music",
        "The Country Music Association is inviting comments from fans on its new partnership with Amazon "
        "Music, which will stream the CMA Awards live from Nashville.",
        False,
    ),
    (
        "cma-invitation-to-comment",
        "Nvidia slips below its 50-day CMA",
        "Nvidia shares fell below their 50-day cumulative moving average (CMA) after reports that the "
        "chipmaker was seeking views from investors on a minority stake in OpenAI.",
        False,
    ),
    (
        "cma-invitation-to-comment",
        "Bundeskartellamt seeks views on Microsoft's partnership with OpenAI",
        "Germany's competition authority is inviting comments on whether Microsoft's partnership with "
        "OpenAI is subject to German merger control.",
        False,
    ),
    (
        "cma-invitation-to-comment",
        "Microsoft takes minority stake in Mistral AI",
        "Microsoft will invest €15 million in the Paris-based AI start-up as part of a multi-year "
        "partnership, the companies said, and invited comments from developers on the new models.",
        False,
    ),
    (
        "cma-invitation-to-comment",
        "CMA invites comment on proposed undertakings in veterinary services",
        "The CMA is inviting comments on undertakings offered by large vet groups to publish prices, "
        "as part of its market investigation into veterinary services for household pets.",
        False,
    ),
    (
        "cma-invitation-to-comment",
        "CMA CGM signs €100 million partnership with Mistral AI",
        "The French shipping and logistics group will deploy Mistral AI's models across its container "
        "operations under a five-year partnership.",
        False,
    ),
    # ---- cma-merger-inquiry -------------------------------------------------------------------
    (
        "cma-merger-inquiry",
        "CMA clears Microsoft's hiring of former Inflection staff",
        "The CMA has found that Microsoft's hiring of former employees of Inflection AI amounts to a "
        "relevant merger situation but does not raise competition concerns at phase 1.",
        True,
    ),
    (
        "cma-merger-inquiry",
        "Amazon / Anthropic partnership merger inquiry",
        "The CMA has launched a merger inquiry into Amazon's partnership with Anthropic. The statutory "
        "deadline for the phase 1 decision is 4 October 2024.",
        True,
    ),
    (
        "cma-merger-inquiry",
        "Microsoft / OpenAI partnership: found not to qualify",
        "The Competition and Markets Authority has found that Microsoft's partnership with OpenAI does "
        "not qualify for investigation under the merger provisions of the Enterprise Act 2002.",
        True,
    ),
    (
        "cma-merger-inquiry",
        "CMA decides not to refer Microsoft / Inflection to phase 2",
        "The CMA clears Microsoft's hiring of Inflection AI staff and will not refer the arrangements to "
        "an in-depth investigation.",
        True,
    ),
    (
        "cma-merger-inquiry",
        "CMA Fest organiser clears way for Amazon Music partnership",
        "The Country Music Association clears plans for a partnership with Amazon Music that will "
        "stream CMA Fest performances, subject to a merger inquiry by its board.",
        False,
    ),
    (
        "cma-merger-inquiry",
        "Cloud services market investigation: final decision",
        "The CMA has published its final decision in its market investigation into public cloud "
        "infrastructure, where Amazon Web Services and Microsoft are the leading providers.",
        False,
    ),
    (
        "cma-merger-inquiry",
        "Harbour Telecom / Greyline Mobile merger inquiry",
        "The CMA clears the anticipated acquisition of Greyline Mobile by Harbour Telecom at phase 1.",
        False,
    ),
    (
        "cma-merger-inquiry",
        "FTC closes inquiry into Microsoft's Inflection deal",
        "The Federal Trade Commission said the hiring of Inflection AI staff would not be treated as a "
        "merger investigation after a phase 1 review.",
        False,
    ),
    (
        "cma-merger-inquiry",
        "Microsoft to invest £2.5 billion in UK AI infrastructure",
        "The announcement comes two years after the CMA cleared Microsoft's acquisition of Activision Blizzard.",
        False,
    ),
    # ---- cma-merger-phase-2 -------------------------------------------------------------------
    (
        "cma-merger-phase-2",
        "CMA refers Microsoft / Activision Blizzard to phase 2",
        "The CMA has referred Microsoft's anticipated acquisition of Activision Blizzard for an in-depth "
        "phase 2 investigation after Microsoft did not offer undertakings.",
        True,
    ),
    (
        "cma-merger-phase-2",
        "CMA blocks Meta's takeover of Giphy",
        "The Competition and Markets Authority has ordered Meta to sell Giphy after its phase 2 "
        "investigation found the takeover would harm social media users and advertisers.",
        True,
    ),
    (
        "cma-merger-phase-2",
        "Nvidia / Arm: CMA launches in-depth investigation",
        "The CMA has launched an in-depth investigation into Nvidia's proposed acquisition of Arm over "
        "concerns about access to chip designs.",
        True,
    ),
    (
        "cma-merger-phase-2",
        "CMA decides not to refer Microsoft / Inflection to phase 2",
        "The CMA has found that Microsoft's hiring of Inflection AI staff is a relevant merger situation "
        "and decided not to refer the merger to a phase 2 investigation.",
        False,
    ),
    (
        "cma-merger-phase-2",
        "CMA Fest 2025: phase two of Amazon Music partnership announced",
        "The Country Music Association said phase two of its partnership with Amazon Music will bring "
        "CMA Fest sets to Prime Video.",
        False,
    ),
    (
        "cma-merger-phase-2",
        "EU opens in-depth investigation into Nvidia's acquisition of Run:ai",
        "The European Commission has opened a phase 2 investigation into Nvidia's proposed acquisition "
        "of the Israeli AI start-up.",
        False,
    ),
    (
        "cma-merger-phase-2",
        "OpenAI begins phase two of Stargate partnership with Oracle",
        "OpenAI said the second site of its data centre partnership is under construction in Texas.",
        False,
    ),
    (
        "cma-merger-phase-2",
        "Microsoft to invest £2.5 billion in UK AI infrastructure",
        "The CMA, which blocked Microsoft's acquisition of Activision Blizzard in 2023 before clearing a "
        "restructured deal, welcomed the investment.",
        False,
    ),
    # ---- cma-strategic-market-status ----------------------------------------------------------
    (
        "cma-strategic-market-status",
        "CMA launches first strategic market status investigation",
        "The CMA has opened an SMS investigation into Google's general search and search advertising "
        "services under the Digital Markets, Competition and Consumers Act 2024.",
        True,
    ),
    (
        "cma-strategic-market-status",
        "Apple and Google designated with strategic market status in mobile platforms",
        "The Competition and Markets Authority has designated Apple and Google as having strategic "
        "market status in their mobile operating systems, app stores and browsers.",
        True,
    ),
    (
        "cma-strategic-market-status",
        "CMA proposes first conduct requirements for Google search",
        "Following its designation of Google with strategic market status, the CMA is consulting on "
        "conduct requirements covering fair ranking and choice screens.",
        True,
    ),
    (
        "cma-strategic-market-status",
        "Digital markets regime: draft guidance consultation",
        "The CMA is consulting on draft guidance explaining how it will use its new powers over firms "
        "with strategic market status.",
        False,
    ),
    (
        "cma-strategic-market-status",
        "Police warn of SMS scam impersonating Google",
        "Police have opened an investigation into an SMS scam that sends fake Google security alerts.",
        False,
    ),
    (
        "cma-strategic-market-status",
        "Commission designates six gatekeepers under the Digital Markets Act",
        "The European Commission has designated Alphabet, Amazon, Apple, ByteDance, Meta and Microsoft "
        "as gatekeepers after its investigation.",
        False,
    ),
    (
        "cma-strategic-market-status",
        "Google unveils Gemini 2.5 for search",
        "Google launched its new AI model in search, strengthening what analysts call a strategic "
        "position in the market.",
        False,
    ),
    # ---- ftc-6b-orders ------------------------------------------------------------------------
    (
        "ftc-6b-orders",
        "FTC Issues 6(b) Orders to Five Companies Seeking Information on AI Investments and Partnerships",
        "The Federal Trade Commission issued orders to five companies requiring them to provide "
        "information regarding recent investments and partnerships involving generative AI companies "
        "and major cloud service providers.",
        True,
    ),
    (
        "ftc-6b-orders",
        "FTC Staff Report Details Key Takeaways from AI Partnerships and Investments Study",
        "The Federal Trade Commission published a staff report on its Section 6(b) study of the "
        "partnerships between Alphabet, Amazon and Microsoft and the AI developers Anthropic and OpenAI.",
        True,
    ),
    (
        "ftc-6b-orders",
        "FTC Launches Inquiry into AI Chatbots Acting as Companions",
        "The FTC is issuing orders to seven companies that provide consumer-facing AI chatbots, using "
        "its 6(b) authority to conduct wide-ranging studies.",
        True,
    ),
    (
        "ftc-6b-orders",
        "FTC Orders Pharmacy Benefit Managers to Provide Information",
        "The FTC issued 6(b) orders to six pharmacy benefit managers about their business practices.",
        True,
    ),
    (
        "ftc-6b-orders",
        "SEC approves exchange rule change",
        "The Securities and Exchange Commission found the proposed rule consistent with Section 6(b) of "
        "the Exchange Act.",
        False,
    ),
    (
        "ftc-6b-orders",
        "FTC sends civil investigative demand to OpenAI",
        "The FTC has sent OpenAI a 20-page civil investigative demand about how ChatGPT handles personal data.",
        False,
    ),
    (
        "ftc-6b-orders",
        "CMA publishes update on AI foundation models",
        "The CMA's update paper looks at partnerships between big tech firms and AI developers under "
        "section 6(b) of its own review plan.",
        False,
    ),
    # ---- ftc-tech-ai-investigation ------------------------------------------------------------
    (
        "ftc-tech-ai-investigation",
        "FTC opens inquiry into Microsoft's deal with Inflection AI",
        "The Federal Trade Commission is investigating whether Microsoft structured its $650 million "
        "deal with Inflection AI to avoid a government antitrust review.",
        True,
    ),
    (
        "ftc-tech-ai-investigation",
        "FTC probing Nvidia's investments in AI start-ups",
        "The FTC is examining whether Nvidia's investments in AI companies give it an unfair advantage.",
        True,
    ),
    (
        "ftc-tech-ai-investigation",
        "FTC issues civil investigative demands over Amazon's Adept AI hiring",
        "The FTC has sent civil investigative demands to Amazon about its hiring of Adept AI's founders "
        "and a licensing deal for Adept's technology.",
        True,
    ),
    (
        "ftc-tech-ai-investigation",
        "FTC Sues to Block Microsoft's Acquisition of Activision Blizzard",
        "Following an investigation, the Federal Trade Commission issued an administrative complaint to "
        "block Microsoft's acquisition of the video game publisher.",
        False,
    ),
    (
        "ftc-tech-ai-investigation",
        "FTC launches inquiry into generative AI investments and partnerships",
        "The FTC issued 6(b) orders to Alphabet, Amazon, Anthropic, Microsoft and OpenAI.",
        False,
    ),
    (
        "ftc-tech-ai-investigation",
        "FTC investigating OpenAI over ChatGPT data leak",
        "The FTC is investigating whether OpenAI engaged in unfair or deceptive privacy or data security practices.",
        False,
    ),
    (
        "ftc-tech-ai-investigation",
        "DOJ investigating Microsoft's OpenAI partnership",
        "The Justice Department is examining the partnership between Microsoft and OpenAI.",
        False,
    ),
    # ---- ftc-tech-ai-enforcement --------------------------------------------------------------
    (
        "ftc-tech-ai-enforcement",
        "FTC Sues to Block Microsoft's Acquisition of Activision Blizzard",
        "Following an investigation, the Federal Trade Commission issued an administrative complaint to "
        "block Microsoft's acquisition of the video game publisher.",
        True,
    ),
    (
        "ftc-tech-ai-enforcement",
        "FTC Sues to Block Northwind's Acquisition of Lumen AI",
        "The Federal Trade Commission today sued to block Northwind's proposed $2 billion acquisition of "
        "Lumen AI, an artificial intelligence developer.",
        True,
    ),
    (
        "ftc-tech-ai-enforcement",
        "FTC Finalizes Consent Order in Amazon Acquisition of iRobot",
        "The Federal Trade Commission approved a final consent order requiring Amazon to notify the "
        "agency of future acquisitions of robotics companies.",
        True,
    ),
    (
        "ftc-tech-ai-enforcement",
        "FTC Sues to Block Northfield Medical's Acquisition of Cardinal Infusion Systems",
        "The Federal Trade Commission today sued to block Northfield Medical Inc.'s proposed $1.2 billion "
        "acquisition of Cardinal Infusion Systems, alleging the deal would eliminate head-to-head "
        "competition in the market for large-volume infusion pumps.",
        False,
    ),
    (
        "ftc-tech-ai-enforcement",
        "FTC Takes Action Against Meta for Violating 2020 Privacy Order",
        "The FTC filed a complaint alleging Meta misled parents about controls on its Messenger Kids app "
        "and proposed changes to its privacy order.",
        False,
    ),
    (
        "ftc-tech-ai-enforcement",
        "Justice Department Sues to Block Nvidia's Acquisition of Run:ai",
        "The Justice Department filed a civil antitrust lawsuit to block Nvidia's acquisition of the AI start-up.",
        False,
    ),
    (
        "ftc-tech-ai-enforcement",
        "FTC chair discusses AI partnerships",
        "In a speech, the head of the FTC described the challenges that investments by big tech in AI "
        "developers pose for competition.",
        False,
    ),
    # ---- doj-antitrust-tech-investigation -----------------------------------------------------
    (
        "doj-antitrust-tech-investigation",
        "DOJ sends civil investigative demands to Nvidia in AI chip probe",
        "The Justice Department's Antitrust Division has issued civil investigative demands to Nvidia as "
        "it investigates whether the chipmaker makes it harder to switch suppliers.",
        True,
    ),
    (
        "doj-antitrust-tech-investigation",
        "Justice Department opens antitrust investigation into Google's deal with Character.AI",
        "The DOJ is examining whether Google's licensing agreement with Character.AI was structured to "
        "avoid merger review.",
        True,
    ),
    (
        "doj-antitrust-tech-investigation",
        "DOJ issues second request on Alphabet acquisition",
        "The Justice Department's Antitrust Division issued a second request for information about "
        "Alphabet's proposed acquisition of Wiz.",
        True,
    ),
    (
        "doj-antitrust-tech-investigation",
        "Former Google Engineer Charged with Stealing AI Trade Secrets",
        "The Justice Department charged a former Google software engineer with theft of trade secrets "
        "related to artificial intelligence. The FBI investigation is continuing.",
        False,
    ),
    (
        "doj-antitrust-tech-investigation",
        "Justice Department Sues Google for Monopolizing Digital Advertising Technologies",
        "After a lengthy investigation, the Department of Justice filed a civil antitrust lawsuit "
        "against Google for monopolizing digital advertising technologies.",
        False,
    ),
    (
        "doj-antitrust-tech-investigation",
        "FTC probing Microsoft's OpenAI deal on antitrust grounds",
        "The Federal Trade Commission has opened an antitrust investigation into the partnership "
        "between Microsoft and OpenAI.",
        False,
    ),
    (
        "doj-antitrust-tech-investigation",
        "Antitrust Division expands investigation of bid rigging with AI screening",
        "The Procurement Collusion Strike Force uses AI analytics to flag suspicious bids in its "
        "investigations of highway contracts.",
        False,
    ),
    # ---- doj-antitrust-tech-lawsuit -----------------------------------------------------------
    (
        "doj-antitrust-tech-lawsuit",
        "Justice Department Sues Apple for Monopolizing Smartphone Markets",
        "The Justice Department, along with 16 state and district attorneys general, filed a civil "
        "antitrust lawsuit against Apple for monopolization of smartphone markets.",
        True,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "Justice Department Sues Google for Monopolizing Digital Advertising Technologies",
        "After a lengthy investigation, the Department of Justice filed a civil antitrust lawsuit "
        "against Google for monopolizing digital advertising technologies.",
        True,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "DOJ proposes remedies in Google search monopoly case",
        "The Justice Department asked the court to order Google to sell its Chrome browser and to share "
        "search data with rivals, including AI developers such as OpenAI.",
        True,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "Justice Department Sues to Block Acquisition of Regional Freight Rail Operator",
        "The Justice Department filed a civil antitrust lawsuit today to block Prairie Line Holdings' "
        "proposed acquisition of Great Basin Rail.",
        False,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "Former Google engineer convicted of stealing AI secrets",
        "A federal jury convicted the former Google engineer after a two-week trial, the Justice Department said.",
        False,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "Epic Games wins antitrust lawsuit against Google",
        "A jury found that Google's Play Store is an illegal monopoly in Epic's private lawsuit.",
        False,
    ),
    (
        "doj-antitrust-tech-lawsuit",
        "FTC sues Amazon, alleging it is a monopolist",
        "The Federal Trade Commission and 17 states sued Amazon, alleging it illegally maintains monopoly "
        "power in online retail.",
        False,
    ),
    # ---- eu-merger-article-22 -----------------------------------------------------------------
    (
        "eu-merger-article-22",
        "Commission accepts Article 22 referral of Nvidia's acquisition of Run:ai",
        "The European Commission has accepted a request from Italy's competition authority to examine "
        "Nvidia's proposed acquisition of Run:ai under Article 22 of the EU Merger Regulation.",
        True,
    ),
    (
        "eu-merger-article-22",
        "Microsoft / Inflection: EU to review hiring after Article 22 requests",
        "Seven member states asked the European Commission to review Microsoft's hiring of Inflection's "
        "staff, using the Article 22 referral mechanism.",
        True,
    ),
    (
        "eu-merger-article-22",
        "Mergers: Commission invites Article 22 referral of AI deal",
        "Mergers: Commission invites national authorities to refer Northwind's acquisition of Lumen AI, "
        "an artificial intelligence start-up, under Article 22.",
        True,
    ),
    (
        "eu-merger-article-22",
        "EU withdraws Article 22 decisions in Illumina / Grail",
        "The European Commission withdrew its decisions accepting the Article 22 referral of Illumina's "
        "acquisition of Grail after the Court of Justice ruling.",
        False,
    ),
    (
        "eu-merger-article-22",
        "EU court rules on AI credit scoring under GDPR Article 22",
        "The EU's top court said Article 22 of the GDPR gives people a right not to be subject to "
        "decisions by artificial intelligence; the case was referred by a German court.",
        False,
    ),
    (
        "eu-merger-article-22",
        "Microsoft takes minority stake in Mistral AI",
        "Microsoft will invest €15 million in the Paris-based AI start-up as part of a partnership.",
        False,
    ),
    # ---- eu-merger-in-depth -------------------------------------------------------------------
    (
        "eu-merger-in-depth",
        "Commission opens in-depth investigation into proposed acquisition of Run:ai by Nvidia",
        "The European Commission has opened an in-depth investigation to assess, under the EU Merger "
        "Regulation, the proposed acquisition of Run:ai by Nvidia.",
        True,
    ),
    (
        "eu-merger-in-depth",
        "EU launches phase 2 probe of Microsoft's Activision Blizzard takeover",
        "The European Commission has opened a phase II investigation into Microsoft's takeover of the "
        "video game publisher.",
        True,
    ),
    (
        "eu-merger-in-depth",
        "Mergers: Commission opens in-depth investigation into Amazon's acquisition of iRobot",
        "The Commission is concerned that the acquisition could restrict competition in robot vacuum cleaners.",
        True,
    ),
    (
        "eu-merger-in-depth",
        "State aid: Commission opens in-depth investigation into support for AI gigafactory",
        "The European Commission has opened an in-depth investigation into whether Italian support for "
        "the acquisition of land for an AI data centre complies with EU State aid rules.",
        False,
    ),
    (
        "eu-merger-in-depth",
        "CMA refers Microsoft / Activision Blizzard to phase 2",
        "The CMA has referred Microsoft's anticipated acquisition of Activision Blizzard for an in-depth "
        "phase 2 investigation.",
        False,
    ),
    (
        "eu-merger-in-depth",
        "Commission opens in-depth investigation into Illumina / Grail",
        "The European Commission has opened an in-depth investigation into Illumina's acquisition of "
        "Grail, a developer of cancer tests.",
        False,
    ),
    # ---- eu-merger-decision -------------------------------------------------------------------
    (
        "eu-merger-decision",
        "Mergers: Commission clears acquisition of Nuance by Microsoft",
        "The European Commission has approved, under the EU Merger Regulation, the proposed acquisition "
        "of Nuance Communications by Microsoft.",
        True,
    ),
    (
        "eu-merger-decision",
        "Prior notification of a concentration (Case M.11456 – Amazon / Anthropic)",
        "On 2 May 2024 the European Commission received notification of a proposed concentration by "
        "which Amazon acquires joint control of Anthropic.",
        True,
    ),
    (
        "eu-merger-decision",
        "EU approves Microsoft's Activision deal subject to commitments",
        "The European Commission approved the acquisition of Activision Blizzard by Microsoft, subject "
        "to commitments on cloud game streaming.",
        True,
    ),
    (
        "eu-merger-decision",
        "Microsoft unveils AI model trained on game footage",
        "The model builds on Activision Blizzard titles; the acquisition was cleared by the EU in 2023 "
        "after cloud gaming remedies.",
        False,
    ),
    (
        "eu-merger-decision",
        "CMA clears Microsoft's hiring of former Inflection staff",
        "The CMA has found the acquisition of the team does not raise competition concerns.",
        False,
    ),
    (
        "eu-merger-decision",
        "Mergers: Commission clears acquisition of Dutch dairy producer",
        "The European Commission has approved the acquisition of Zuivel Noord by a Danish cooperative.",
        False,
    ),
    (
        "eu-merger-decision",
        "Daily News 20 / 05 / 2024",
        "Mergers: Commission clears acquisition of Zuivel Noord by a Danish cooperative. The AI Office "
        "launches a consultation on the general-purpose AI code of practice. Commissioner visits Kyiv.",
        False,
    ),
    # ---- eu-antitrust-tech --------------------------------------------------------------------
    (
        "eu-antitrust-tech",
        "Antitrust: Commission fines Apple over €1.8 billion over App Store rules for music streaming",
        "The European Commission has fined Apple over €1.8 billion for abusing its dominant position on "
        "the market for the distribution of music streaming apps.",
        True,
    ),
    (
        "eu-antitrust-tech",
        "Commission opens formal investigation into Microsoft's bundling of Teams",
        "The European Commission has opened a formal investigation to assess whether Microsoft may have "
        "breached EU competition rules by tying Teams to its Office 365 suites.",
        True,
    ),
    (
        "eu-antitrust-tech",
        "EU sends questionnaires on AI partnerships",
        "The European Commission has sent requests for information to large digital players about "
        "agreements with generative AI developers, including Microsoft's partnership with OpenAI, to "
        "check whether they breach EU antitrust rules.",
        True,
    ),
    (
        "eu-antitrust-tech",
        "Irish regulator fines Meta €1.2 billion over EU-US data transfers",
        "The Data Protection Commission fined Meta under the GDPR for transferring EU users' data.",
        False,
    ),
    (
        "eu-antitrust-tech",
        "Commission opens formal proceedings against Meta under the Digital Services Act",
        "The European Commission opened proceedings to assess whether Meta breached the DSA in areas "
        "linked to the protection of minors.",
        False,
    ),
    (
        "eu-antitrust-tech",
        "AI Act: Commission publishes guidelines for general-purpose AI models",
        "Providers of AI models face fines of up to 3% of global turnover, the European Commission said.",
        False,
    ),
    (
        "eu-antitrust-tech",
        "CMA opens investigation into Google's ad tech practices",
        "The CMA suspects Google abused a dominant position in ad tech, in breach of the Competition Act.",
        False,
    ),
    # ---- eu-dma-proceedings -------------------------------------------------------------------
    (
        "eu-dma-proceedings",
        "Commission opens non-compliance investigations against Alphabet, Apple and Meta",
        "The European Commission has opened non-compliance investigations under the Digital Markets Act "
        "into Alphabet's rules on steering in Google Play and self-preferencing in Google Search.",
        True,
    ),
    (
        "eu-dma-proceedings",
        "EU fines Apple €500 million and Meta €200 million under the DMA",
        "The European Commission fined Apple and Meta for breaching the Digital Markets Act.",
        True,
    ),
    (
        "eu-dma-proceedings",
        "Commission designates Booking as a gatekeeper under the Digital Markets Act",
        "The European Commission has designated Booking Holdings as a gatekeeper for its online "
        "intermediation service.",
        True,
    ),
    (
        "eu-dma-proceedings",
        "Commission opens formal proceedings against X under the Digital Services Act",
        "The European Commission opened proceedings to assess whether X breached the DSA.",
        False,
    ),
    (
        "eu-dma-proceedings",
        "Apple announces changes to iOS in the EU to comply with the Digital Markets Act",
        "Apple said it will allow alternative app marketplaces for users in the EU from March.",
        False,
    ),
    (
        "eu-dma-proceedings",
        "Nvidia patches GPU memory flaw",
        "Researchers at an EU university found that a direct memory access (DMA) flaw lets attackers "
        "read GPU memory; Nvidia has released a patch.",
        False,
    ),
    (
        "eu-dma-proceedings",
        "CMA designates Apple and Google with strategic market status",
        "The CMA's designation under the UK's DMCC Act opens the way to conduct requirements.",
        False,
    ),
    # ---- deals-bigtech-ai-investment ----------------------------------------------------------
    (
        "deals-bigtech-ai-investment",
        "Microsoft invests €15 million in Mistral AI",
        "Microsoft will take a minority stake in the Paris-based start-up, which will make its models "
        "available on Azure.",
        True,
    ),
    (
        "deals-bigtech-ai-investment",
        "Amazon to invest up to $4 billion in Anthropic",
        "Anthropic will use AWS Trainium chips to build future models under the agreement.",
        True,
    ),
    (
        "deals-bigtech-ai-investment",
        "Meta takes 49% stake in Scale AI",
        "Meta Platforms agreed to a $14.3 billion investment in Scale AI, whose chief executive will "
        "join Meta's superintelligence effort.",
        True,
    ),
    (
        "deals-bigtech-ai-investment",
        "Nvidia backs xAI in $6 billion funding round",
        "Nvidia is among the investors in the funding round of Elon Musk's xAI.",
        True,
    ),
    (
        "deals-bigtech-ai-investment",
        "Mistral AI raises €600 million led by General Catalyst",
        "The Paris start-up's funding round values it at €5.8 billion.",
        False,
    ),
    (
        "deals-bigtech-ai-investment",
        "OpenAI launches GPT-4o",
        "The Microsoft-backed start-up, in which Microsoft has invested more than $13 billion, unveiled "
        "a faster model.",
        False,
    ),
    (
        "deals-bigtech-ai-investment",
        "Microsoft to invest $3.2 billion in Swedish cloud and AI infrastructure",
        "The investment in data centres will double the company's AI capacity in Sweden.",
        False,
    ),
    (
        "deals-bigtech-ai-investment",
        "Google DeepMind unveils Gemini 2.5",
        "Google, which invests billions a year in DeepMind's research, said the model tops benchmarks.",
        False,
    ),
    # ---- deals-bigtech-ai-acquihire -----------------------------------------------------------
    (
        "deals-bigtech-ai-acquihire",
        "Microsoft hires Inflection AI co-founders in $650 million licensing deal",
        "Mustafa Suleyman and Karen Simonyan join Microsoft, which will pay Inflection AI to license its models.",
        True,
    ),
    (
        "deals-bigtech-ai-acquihire",
        "Google signs acqui-hire deal with Character.AI",
        "Google will hire Character.AI's founders and take a non-exclusive licence to its models.",
        True,
    ),
    (
        "deals-bigtech-ai-acquihire",
        "Amazon hires Adept AI founders and licenses its agent technology",
        "Amazon hired Adept's co-founders and signed a licensing agreement for its models.",
        True,
    ),
    (
        "deals-bigtech-ai-acquihire",
        "Meta hires OpenAI researcher to lead superintelligence lab",
        "Meta has hired a senior OpenAI researcher with a compensation package worth $100 million.",
        False,
    ),
    (
        "deals-bigtech-ai-acquihire",
        "Character.AI signs licensing deal with Universal Music",
        "The AI start-up will hire music specialists to work on licensed voice features.",
        False,
    ),
    (
        "deals-bigtech-ai-acquihire",
        "Microsoft and OpenAI sign new licensing agreement",
        "The agreement gives Microsoft access to OpenAI's models until 2032.",
        False,
    ),
    # ---- deals-bigtech-ai-partnership ---------------------------------------------------------
    (
        "deals-bigtech-ai-partnership",
        "Microsoft and Mistral AI announce multi-year partnership",
        "Mistral's models will be available on Azure under the agreement.",
        True,
    ),
    (
        "deals-bigtech-ai-partnership",
        "Apple partners with OpenAI to bring ChatGPT to iOS",
        "ChatGPT will be integrated into Siri and writing tools later this year.",
        True,
    ),
    (
        "deals-bigtech-ai-partnership",
        "Google Cloud signs compute deal with Anthropic",
        "Anthropic will use up to one million Google TPUs to train and serve Claude models.",
        True,
    ),
    (
        "deals-bigtech-ai-partnership",
        "Microsoft takes minority stake in Mistral AI as part of partnership",
        "Microsoft will invest €15 million in the Paris start-up.",
        False,
    ),
    (
        "deals-bigtech-ai-partnership",
        "Salesforce partners with Anthropic",
        "Claude models will be available to Salesforce customers in Agentforce.",
        False,
    ),
    (
        "deals-bigtech-ai-partnership",
        "Microsoft and Nvidia expand partnership on AI supercomputers",
        "The companies will build new AI infrastructure on Azure.",
        False,
    ),
    (
        "deals-bigtech-ai-partnership",
        "CMA CGM signs €100 million partnership with Mistral AI",
        "The French shipping group will deploy Mistral AI's models across its container operations.",
        False,
    ),
]


def _case_id(case: tuple[str, str, str, bool]) -> str:
    rule_id, title, _, should_match = case
    return f"{rule_id}:{'match' if should_match else 'miss'}:{title[:40]}"


@pytest.mark.parametrize(("rule_id", "title", "text", "should_match"), CASES, ids=[_case_id(c) for c in CASES])
def test_rule_example(ruleset: RuleSet, rule_id: str, title: str, text: str, should_match: bool) -> None:
    matches = {m.rule_id: m for m in ruleset.match(_item(title, text))}
    if should_match:
        assert rule_id in matches, f"{rule_id} should fire on: {title}"
    else:
        reasons = [str(r) for r in matches[rule_id].reasons] if rule_id in matches else []
        assert rule_id not in matches, f"{rule_id} should not fire on: {title} (fired because {reasons})"


# The acceptance scenario: gov.uk items announcing the CMA's invitation to comment on Microsoft /
# Mistral AI, as the news feed, the case update and a press release carry it.
ACCEPTANCE_ATOM = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <id>https://www.gov.uk/search/news-and-communications</id>
  <title>News and communications from Competition and Markets Authority</title>
  <updated>2024-04-04T10:00:00+01:00</updated>
  <entry>
    <id>https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry</id>
    <updated>2024-04-04T10:00:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry"/>
    <title>Microsoft / Mistral AI partnership: invitation to comment</title>
    <summary type="html">The CMA is inviting comments on the partnership between Microsoft and Mistral AI.</summary>
  </entry>
  <entry>
    <id>https://www.gov.uk/government/news/cma-invites-comment-on-microsofts-partnership-with-mistral-ai</id>
    <updated>2024-04-04T09:30:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/government/news/cma-invites-comment-on-microsofts-partnership-with-mistral-ai"/>
    <title>CMA invites comment on Microsoft&#8217;s partnership with Mistral AI</title>
    <summary type="html">The Competition and Markets Authority is seeking views on whether Microsoft&#39;s
      partnership with Mistral AI has resulted in a relevant merger situation.</summary>
  </entry>
  <entry>
    <id>https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry#itc</id>
    <updated>2024-04-04T09:00:00+01:00</updated>
    <link rel="alternate" type="text/html"
          href="https://www.gov.uk/cma-cases/microsoft-slash-mistral-ai-partnership-merger-inquiry"/>
    <title>Microsoft / Mistral AI partnership merger inquiry</title>
    <summary type="html">&lt;p&gt;Invitation to comment: the CMA is considering whether it is or may be the
      case that Microsoft Corporation&amp;rsquo;s partnership with Mistral AI has resulted in the
      creation of a relevant merger situation.&lt;/p&gt;</summary>
  </entry>
</feed>
"""


# Rules that overlap veto one another so that one item alerts once, at the higher severity; items
# that name a regulator's step and a deal also fire the deals pack (documented in deals.toml).
OVERLAPS = [
    (
        "FTC Sues to Block Microsoft's Acquisition of Activision Blizzard",
        "Following an investigation, the Federal Trade Commission issued an administrative complaint to "
        "block Microsoft's acquisition of the video game publisher.",
        {"ftc-tech-ai-enforcement"},
    ),
    (
        "FTC launches inquiry into AI investments",
        "The FTC issued 6(b) orders to Alphabet, Amazon and Microsoft about their stakes in AI developers.",
        {"ftc-6b-orders"},
    ),
    (
        "Justice Department Sues Google for Monopolizing Digital Advertising Technologies",
        "After a lengthy investigation, the Department of Justice filed a civil antitrust lawsuit "
        "against Google for monopolizing digital advertising technologies.",
        {"doj-antitrust-tech-lawsuit"},
    ),
    (
        "CMA decides not to refer Microsoft / Inflection to phase 2",
        "The CMA has found that Microsoft's hiring of Inflection AI staff is a relevant merger situation "
        "and decided not to refer the merger to a phase 2 investigation.",
        {"cma-merger-inquiry"},
    ),
    (
        "CMA invites comment on Northwind / Lumen AI partnership",
        "The CMA is seeking views on whether Northwind's partnership with Lumen AI has resulted in a "
        "relevant merger situation.",
        {"cma-invitation-to-comment"},
    ),
    (
        "Microsoft takes minority stake in Mistral AI as part of partnership",
        "Microsoft will invest €15 million in the Paris start-up.",
        {"deals-bigtech-ai-investment"},
    ),
    (
        "CMA invites comment on Microsoft's partnership with Mistral AI",
        "The CMA is inviting comments on the partnership between Microsoft and Mistral AI.",
        {"cma-invitation-to-comment", "deals-bigtech-ai-partnership"},
    ),
]


@pytest.mark.parametrize(("title", "text", "expected"), OVERLAPS, ids=[t[:40] for t, _, _ in OVERLAPS])
def test_overlapping_rules_fire_exactly(ruleset: RuleSet, title: str, text: str, expected: set[str]) -> None:
    assert fired(ruleset, title, text) == expected


def test_acceptance_items_fire_cma_invitation_to_comment(ruleset: RuleSet) -> None:
    parsed = parse_feed(ACCEPTANCE_ATOM, feed_id="cma-news", url="https://www.gov.uk/search/news.atom")
    items, warnings = normalise_feed(parsed, "cma-news")

    assert warnings == []
    assert len(items) == 3
    for item in items:
        assert "cma-invitation-to-comment" in {m.rule_id for m in ruleset.match(item)}, item.title


def test_acceptance_item_as_plain_item(ruleset: RuleSet) -> None:
    assert "cma-invitation-to-comment" in fired(
        ruleset,
        "Microsoft / Mistral AI partnership: invitation to comment",
        "The CMA is inviting comments on the partnership between Microsoft and Mistral AI.",
    )


# Items that no shipped rule may fire on: other CMAs, AI news with no regulator or deal, background.
NOISE = [
    (
        "CMA Awards 2024: Morgan Wallen leads nominations",
        "The Country Music Association announced nominees for the 58th CMA Awards, which air on ABC.",
    ),
    (
        "CMA Fest returns to Nashville with Amazon Music livestream",
        "The four-day CMA Fest will stream on Amazon Music for the first time, the Country Music Association said.",
    ),
    (
        "Bitcoin holds above 200-day CMA as Nvidia earnings loom",
        "Traders watched the cumulative moving average ahead of Nvidia's results and OpenAI's next model.",
    ),
    (
        "OpenAI launches o3 reasoning model",
        "The Microsoft-backed start-up said the model is better at maths and coding than its predecessors.",
    ),
    (
        "Google DeepMind unveils Gemini 2.5",
        "Google said the AI model leads benchmarks in reasoning and coding.",
    ),
    (
        "CMA CGM completes acquisition of Bolloré Logistics",
        "The shipping group closed the €4.85 billion deal after regulatory approvals.",
    ),
    (
        "Meta releases Llama 4 models",
        "Meta said the open-weight models outperform rivals from OpenAI and Google on several benchmarks.",
    ),
]


@pytest.mark.parametrize(("title", "text"), NOISE, ids=[t[:40] for t, _ in NOISE])
def test_noise_fires_no_rule(ruleset: RuleSet, title: str, text: str) -> None:
    assert fired(ruleset, title, text) == set()


def test_saved_gov_uk_and_ftc_feeds(ruleset: RuleSet) -> None:
    """The saved fixture feeds fire only where a lawyer would expect."""
    expected = {
        "cma-news.atom": {"CMA invites comment on Northwind / Lumen AI partnership": {"cma-invitation-to-comment"}},
        "ftc-press.rss": {
            "FTC Issues 6(b) Orders to Five Companies Seeking Information on AI Investments and Partnerships": {
                "ftc-6b-orders"
            }
        },
        "doj-antitrust.rss": {},
        # Case entries carry a title only and no regulator name: nothing fires without the page text.
        "cma-cases.atom": {},
    }
    for name, want in expected.items():
        body = (FEEDS_DIR / name).read_bytes()
        feed_id = Path(name).stem
        items, _ = normalise_feed(parse_feed(body, feed_id=feed_id, url="https://example.org/feed"), feed_id)
        got = {}
        for item in items:
            ids = {m.rule_id for m in ruleset.match(item)}
            if ids:
                got[item.title] = ids
        assert got == want, name


def test_rule_files_are_the_expected_packs() -> None:
    assert {p.name for p in rule_files([RULES_DIR])} == EXPECTED_FILES


def test_rule_files_open_with_a_scope_comment() -> None:
    for path in rule_files([RULES_DIR]):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), path.name


def test_rules_load(rules: list[Rule]) -> None:
    assert len(rules) >= 5
    assert all(rule.enabled for rule in rules)


def test_rule_ids_are_unique(rules: list[Rule]) -> None:
    counts = Counter(rule.id for rule in rules)
    assert [rule_id for rule_id, n in counts.items() if n > 1] == []


def test_every_rule_has_a_description(rules: list[Rule]) -> None:
    assert [rule.id for rule in rules if len(rule.description.strip()) < 40] == []


def test_rules_leave_channels_and_feeds_to_the_config(rules: list[Rule]) -> None:
    assert [rule.id for rule in rules if rule.channels or rule.feeds] == []


def test_every_rule_has_three_examples_each_way(rules: list[Rule]) -> None:
    known = {rule.id for rule in rules}
    assert {rule_id for rule_id, *_ in CASES} - known == set(), "examples name an unknown rule"
    for rule in rules:
        hits = sum(1 for rule_id, *_, should in CASES if rule_id == rule.id and should)
        misses = sum(1 for rule_id, *_, should in CASES if rule_id == rule.id and not should)
        assert hits >= 3, f"{rule.id}: {hits} must-match examples"
        assert misses >= 3, f"{rule.id}: {misses} must-not-match examples"
